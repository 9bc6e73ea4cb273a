{{/* Names of the chart's objects. */}}

{{- define "dagster-dbt-k8s.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "dagster-dbt-k8s.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: <fullname>-<component> (call with list $ "component"). */}}
{{- define "dagster-dbt-k8s.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "dagster-dbt-k8s.fullname" $root | trunc 40 | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "dagster-dbt-k8s.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dagster-dbt-k8s.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name an existing ServiceAccount allowed to manage Jobs and Pods" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dagster-dbt-k8s.instanceConfigMapName" -}}
{{- include "dagster-dbt-k8s.componentName" (list . "instance") }}
{{- end }}

{{- define "dagster-dbt-k8s.workspaceConfigMapName" -}}
{{- include "dagster-dbt-k8s.componentName" (list . "workspace") }}
{{- end }}

{{- define "dagster-dbt-k8s.envConfigMapName" -}}
{{- include "dagster-dbt-k8s.componentName" (list . "env") }}
{{- end }}

{{/* The code servers' Deployment keeps one name across upgrades (kubectl rollout status). */}}
{{- define "dagster-dbt-k8s.codeLocationDeploymentName" -}}
{{- include "dagster-dbt-k8s.componentName" (list . "code-location") }}
{{- end }}

{{/* Their Service is named after the server id: one Service per version of the definitions, which
     selects only that version's pods. The webserver and the daemon (restarted by the workspace's
     checksum) can then never load the location from an old server still draining behind it, and
     every run they launch after an upgrade gets the new image. */}}
{{- define "dagster-dbt-k8s.codeLocationServiceName" -}}
{{- printf "%s-code-%s" (include "dagster-dbt-k8s.fullname" . | trunc 40 | trimSuffix "-") (include "dagster-dbt-k8s.codeServerId" . | trunc 10) }}
{{- end }}

{{/* The pod label the version's Service selects on. */}}
{{- define "dagster-dbt-k8s.codeServerIdLabel" -}}
dagster-dbt-k8s/code-server-id: {{ include "dagster-dbt-k8s.codeServerId" . | quote }}
{{- end }}

{{- define "dagster-dbt-k8s.webserverServiceName" -}}
{{- include "dagster-dbt-k8s.componentName" (list . "webserver") }}
{{- end }}

{{- define "dagster-dbt-k8s.postgresqlName" -}}
{{- include "dagster-dbt-k8s.componentName" (list . "postgresql") }}
{{- end }}
