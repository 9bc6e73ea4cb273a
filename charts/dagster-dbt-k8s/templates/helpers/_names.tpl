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

{{/*
The ServiceAccount of one component: call with list $ <key of serviceAccount> (webserver, daemon,
codeLocation, runWorker, postgresql, hooks). Defaults to <fullname>-<key in kebab case>.
*/}}
{{- define "dagster-dbt-k8s.serviceAccountName" -}}
{{- $root := index . 0 -}}
{{- $key := index . 1 -}}
{{- $account := index $root.Values.serviceAccount $key -}}
{{- if $root.Values.serviceAccount.create -}}
{{- default (include "dagster-dbt-k8s.componentName" (list $root (kebabcase $key))) $account.name -}}
{{- else -}}
{{- $needs := dict "webserver" "allowed to delete Jobs and to list and delete Pods in the release namespace (terminating a run from the UI)" "daemon" "allowed what templates/daemon-role.yaml allows (the run launcher's Job and Pod calls)" -}}
{{- required (printf "serviceAccount.%s.name is required when serviceAccount.create is false: name an existing ServiceAccount %s" $key (get $needs $key | default "(it needs no permissions)")) $account.name -}}
{{- end -}}
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
