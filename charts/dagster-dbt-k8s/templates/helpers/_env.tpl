{{/*
The environment contract of the project's code (code location, run pods, daemon, webserver).
Non-secret values live in the env ConfigMap; passwords and keys only come from Secrets.
*/}}

{{/* Data of the env ConfigMap (non-secret values only). */}}
{{- define "dagster-dbt-k8s.envConfigMapData" -}}
DO_NOT_TRACK: "1"
DAGSTER_PG_HOST: {{ include "dagster-dbt-k8s.dagsterPg.host" . | quote }}
DAGSTER_PG_PORT: {{ include "dagster-dbt-k8s.dagsterPg.port" . | quote }}
DAGSTER_PG_USER: {{ include "dagster-dbt-k8s.dagsterPg.user" . | quote }}
DAGSTER_PG_DB: {{ include "dagster-dbt-k8s.dagsterPg.database" . | quote }}
PGSERVICEFILE: {{ include "dagster-dbt-k8s.pgServiceFilePath" . | quote }}
PGSERVICE: {{ include "dagster-dbt-k8s.pgServiceName" . | quote }}
DBT_TARGET: {{ .Values.warehouse.target | quote }}
{{- if eq .Values.warehouse.target "postgres" }}
DBT_PG_HOST: {{ include "dagster-dbt-k8s.warehousePg.host" . | quote }}
DBT_PG_PORT: {{ include "dagster-dbt-k8s.warehousePg.port" . | quote }}
DBT_PG_USER: {{ include "dagster-dbt-k8s.warehousePg.user" . | quote }}
DBT_PG_DATABASE: {{ .Values.warehouse.postgres.database | quote }}
{{- range $name, $value := include "dagster-dbt-k8s.warehousePg.params" . | fromJson }}
DBT_PG_{{ upper $name }}: {{ toString $value | quote }}
{{- end }}
{{- else }}
{{- $sf := .Values.warehouse.snowflake }}
SNOWFLAKE_ACCOUNT: {{ required "warehouse.snowflake.account is required when warehouse.target is snowflake" $sf.account | quote }}
SNOWFLAKE_USER: {{ required "warehouse.snowflake.user is required when warehouse.target is snowflake" $sf.user | quote }}
SNOWFLAKE_ROLE: {{ $sf.role | quote }}
SNOWFLAKE_WAREHOUSE: {{ required "warehouse.snowflake.warehouse is required when warehouse.target is snowflake" $sf.warehouse | quote }}
SNOWFLAKE_DATABASE: {{ required "warehouse.snowflake.database is required when warehouse.target is snowflake" $sf.database | quote }}
{{- end }}
{{- end }}

{{/* Name of the Secret whose keys are the Snowflake credentials' env vars, or nothing. */}}
{{- define "dagster-dbt-k8s.snowflakeSecretName" -}}
{{- if eq .Values.warehouse.target "snowflake" }}
{{- required "warehouse.snowflake.existingSecret is required when warehouse.target is snowflake: name a Secret with SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY" .Values.warehouse.snowflake.existingSecret }}
{{- end }}
{{- end }}

{{/* Password env vars, each from a secretKeyRef, and the compute logs' S3 credentials and region (a list of EnvVar). */}}
{{- define "dagster-dbt-k8s.secretEnv" -}}
- name: DAGSTER_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "dagster-dbt-k8s.dagsterPg.secretName" . }}
      key: {{ include "dagster-dbt-k8s.dagsterPg.secretKey" . }}
{{- if eq .Values.warehouse.target "postgres" }}
- name: DBT_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "dagster-dbt-k8s.warehousePg.secretName" . }}
      key: {{ include "dagster-dbt-k8s.warehousePg.secretKey" . }}
{{- end }}
{{- with include "dagster-dbt-k8s.computeLogsEnv" . }}
{{ . }}
{{- end }}
{{- end }}

{{/* envFrom of the project's containers: the env ConfigMap, and the Snowflake Secret. */}}
{{- define "dagster-dbt-k8s.envFrom" -}}
- configMapRef:
    name: {{ include "dagster-dbt-k8s.envConfigMapName" . }}
{{- with include "dagster-dbt-k8s.snowflakeSecretName" . }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{/* checksum/config: changes whenever a ConfigMap the Dagster pods read changes, or a password of
     the embedded PostgreSQL's Secret the chart renders (the server applies it at its restart). */}}
{{- define "dagster-dbt-k8s.configChecksum" -}}
{{- $instance := include "dagster-dbt-k8s.instanceYaml" . }}
{{- $workspace := include "dagster-dbt-k8s.workspaceYaml" . }}
{{- $env := include "dagster-dbt-k8s.envConfigMapData" . }}
{{- $passwords := include "dagster-dbt-k8s.postgresql.passwordsChecksum" . }}
{{- printf "%s\n---\n%s\n---\n%s\n---\n%s" $instance $workspace $env $passwords | sha256sum }}
{{- end }}
