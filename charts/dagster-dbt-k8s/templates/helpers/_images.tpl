{{/*
Image references. The tag is required and never `latest`: no registry can be reached from the
clusters this chart targets, and `latest` makes Kubernetes pull on every start.
Call with list <image values> "<value path>".
*/}}
{{- define "dagster-dbt-k8s.imageRef" -}}
{{- $image := index . 0 }}
{{- $path := index . 1 }}
{{- if not $image.repository }}
{{- fail (printf "%s.repository is required: set it to the image repository" $path) }}
{{- end }}
{{- if not $image.tag }}
{{- fail (printf "%s.tag is required: set it to the image's tag (e.g. 0.1.0)" $path) }}
{{- end }}
{{- if eq (toString $image.tag) "latest" }}
{{- fail (printf "%s.tag must not be latest: pin the tag of an image loaded into the cluster" $path) }}
{{- end }}
{{- printf "%s:%s" $image.repository (toString $image.tag) }}
{{- end }}

{{- define "dagster-dbt-k8s.projectImage" -}}
{{- include "dagster-dbt-k8s.imageRef" (list .Values.codeLocation.image "codeLocation.image") }}
{{- end }}

{{- define "dagster-dbt-k8s.postgresqlImage" -}}
{{- include "dagster-dbt-k8s.imageRef" (list .Values.postgresql.image "postgresql.image") }}
{{- end }}
