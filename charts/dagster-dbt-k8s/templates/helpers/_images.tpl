{{/*
Image references. The tag is required and never `latest`: no registry can be reached from the
clusters this chart targets, and `latest` makes Kubernetes pull on every start.
Call with list <image values> "<value path>".
*/}}
{{- define "dagster-dbt-k8s.imageRef" -}}
{{- $image := index . 0 }}
{{- $path := index . 1 }}
{{- /* The schema requires repository and tag; a JSON schema cannot refuse one value with a
message a user understands, so `latest` is refused here. */}}
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
