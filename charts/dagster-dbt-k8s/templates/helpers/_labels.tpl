{{/* Labels (cert-manager style): call with list $ "component". */}}

{{- define "dagster-dbt-k8s.labels" -}}
{{- $root := index . 0 -}}
{{ include "dagster-dbt-k8s.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selectors use name, instance and component only: they must never change on upgrade. */}}
{{- define "dagster-dbt-k8s.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "dagster-dbt-k8s.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}
