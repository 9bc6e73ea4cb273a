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

{{- define "dagster-dbt-k8s.webserverServiceName" -}}
{{- include "dagster-dbt-k8s.componentName" (list . "webserver") }}
{{- end }}

{{- define "dagster-dbt-k8s.postgresqlName" -}}
{{- include "dagster-dbt-k8s.componentName" (list . "postgresql") }}
{{- end }}
