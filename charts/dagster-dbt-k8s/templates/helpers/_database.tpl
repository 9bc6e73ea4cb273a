{{/*
Connection settings of Dagster's storage and of the dbt postgres target. Secrets are referred
to by name and key only; no password is ever rendered outside a Secret.
*/}}

{{- define "dagster-dbt-k8s.dagsterPg.host" -}}
{{- if .Values.postgresql.enabled }}
{{- include "dagster-dbt-k8s.postgresqlName" . }}
{{- else }}
{{- required "externalPostgresql.host is required when postgresql.enabled is false" .Values.externalPostgresql.host }}
{{- end }}
{{- end }}

{{- define "dagster-dbt-k8s.dagsterPg.port" -}}
{{- ternary .Values.postgresql.port .Values.externalPostgresql.port .Values.postgresql.enabled }}
{{- end }}

{{- define "dagster-dbt-k8s.dagsterPg.user" -}}
{{- ternary .Values.postgresql.user .Values.externalPostgresql.user .Values.postgresql.enabled }}
{{- end }}

{{- define "dagster-dbt-k8s.dagsterPg.database" -}}
{{- ternary .Values.postgresql.database .Values.externalPostgresql.database .Values.postgresql.enabled }}
{{- end }}

{{/* Name of the Secret that holds Dagster's database password. */}}
{{- define "dagster-dbt-k8s.dagsterPg.secretName" -}}
{{- if .Values.postgresql.enabled }}
{{- default (include "dagster-dbt-k8s.postgresqlName" .) .Values.postgresql.existingSecret }}
{{- else }}
{{- required "externalPostgresql.existingSecret is required when postgresql.enabled is false: name a Secret holding the password" .Values.externalPostgresql.existingSecret }}
{{- end }}
{{- end }}

{{- define "dagster-dbt-k8s.dagsterPg.secretKey" -}}
{{- ternary .Values.postgresql.passwordKey .Values.externalPostgresql.passwordKey .Values.postgresql.enabled }}
{{- end }}

{{/* The dbt postgres target: empty values fall back to Dagster's own server, user and password. */}}
{{- define "dagster-dbt-k8s.warehousePg.host" -}}
{{- default (include "dagster-dbt-k8s.dagsterPg.host" .) .Values.warehouse.postgres.host }}
{{- end }}

{{- define "dagster-dbt-k8s.warehousePg.port" -}}
{{- if .Values.warehouse.postgres.host }}
{{- .Values.warehouse.postgres.port }}
{{- else }}
{{- include "dagster-dbt-k8s.dagsterPg.port" . }}
{{- end }}
{{- end }}

{{- define "dagster-dbt-k8s.warehousePg.user" -}}
{{- default (include "dagster-dbt-k8s.dagsterPg.user" .) .Values.warehouse.postgres.user }}
{{- end }}

{{- define "dagster-dbt-k8s.warehousePg.secretName" -}}
{{- default (include "dagster-dbt-k8s.dagsterPg.secretName" .) .Values.warehouse.postgres.existingSecret }}
{{- end }}

{{- define "dagster-dbt-k8s.warehousePg.secretKey" -}}
{{- if .Values.warehouse.postgres.existingSecret }}
{{- .Values.warehouse.postgres.passwordKey }}
{{- else }}
{{- include "dagster-dbt-k8s.dagsterPg.secretKey" . }}
{{- end }}
{{- end }}

{{/* Databases the embedded PostgreSQL creates on first start (POSTGRES_DATABASES). */}}
{{- define "dagster-dbt-k8s.postgresql.databases" -}}
{{- $databases := list .Values.postgresql.database }}
{{- if and (eq .Values.warehouse.target "postgres") (not .Values.warehouse.postgres.host) }}
{{- $databases = append $databases .Values.warehouse.postgres.database }}
{{- range .Values.additionalCodeLocations }}
{{- with .warehouseDatabase }}
{{- $databases = append $databases . }}
{{- end }}
{{- end }}
{{- end }}
{{- $databases | uniq | join " " }}
{{- end }}

{{/*
libpq parameters of Dagster's server, as JSON: externalPostgresql.params with an external
server, none for the embedded one.
*/}}
{{- define "dagster-dbt-k8s.dagsterPg.params" -}}
{{- if .Values.postgresql.enabled }}
{{- dict | toJson }}
{{- else }}
{{- include "dagster-dbt-k8s.refuseConnectionParams" (list .Values.externalPostgresql.params "externalPostgresql.params") }}
{{- .Values.externalPostgresql.params | toJson }}
{{- end }}
{{- end }}

{{/*
libpq parameters of the dbt postgres target, as JSON: warehouse.postgres.params, added to Dagster's
server's parameters (winning per name) while the target uses that server (empty host).
*/}}
{{- define "dagster-dbt-k8s.warehousePg.params" -}}
{{- include "dagster-dbt-k8s.refuseConnectionParams" (list .Values.warehouse.postgres.params "warehouse.postgres.params") }}
{{- $inherited := dict }}
{{- if not .Values.warehouse.postgres.host }}
{{- $inherited = include "dagster-dbt-k8s.dagsterPg.params" . | fromJson }}
{{- end }}
{{- merge (deepCopy .Values.warehouse.postgres.params) $inherited | toJson }}
{{- end }}

{{/*
Fails on a name that is no libpq parameter name (it becomes an env var), and on a parameter that
names the server, the user, the database or the password: those come from the chart's own keys
(the password from a Secret only), and a second value would either be ignored or put a password
in a ConfigMap. Call with list <params map> "<value path>".
*/}}
{{- define "dagster-dbt-k8s.refuseConnectionParams" -}}
{{- $path := index . 1 }}
{{- range $name, $_ := index . 0 }}
{{- if not (regexMatch "^[a-z][a-z0-9_]*$" $name) }}
{{- fail (printf "%s.%s: a libpq parameter name is lowercase letters, digits and _ (dbt gets it as the env var DBT_PG_<NAME>)" $path $name) }}
{{- end }}
{{- if has $name (list "host" "hostaddr" "port" "user" "password" "passfile" "dbname" "database") }}
{{- fail (printf "%s.%s: the server, port, user and database come from the chart's own keys and the password from a Secret; remove %s from params" $path $name $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The libpq connection service every PostgreSQL client of the project's containers and run pods
reads (PGSERVICEFILE, PGSERVICE in the env ConfigMap): postgresqlClient's timeouts and keepalives,
which libpq applies to every parameter a connection does not set itself. The file is a key of the
instance ConfigMap, mounted next to dagster.yaml.
*/}}
{{- define "dagster-dbt-k8s.pgServiceName" -}}
dagster-dbt-k8s
{{- end }}

{{- define "dagster-dbt-k8s.pgServiceFileName" -}}
pg_service.conf
{{- end }}

{{- define "dagster-dbt-k8s.pgServiceFilePath" -}}
{{ printf "%s/%s" .Values.dagsterHome (include "dagster-dbt-k8s.pgServiceFileName" .) }}
{{- end }}

{{/* The service file's mount (from the volume "instance"), for every container given PGSERVICE. */}}
{{- define "dagster-dbt-k8s.pgServiceFileMount" -}}
- name: instance
  mountPath: {{ include "dagster-dbt-k8s.pgServiceFilePath" . }}
  subPath: {{ include "dagster-dbt-k8s.pgServiceFileName" . }}
  readOnly: true
{{- end }}

{{- define "dagster-dbt-k8s.pgServiceFile" -}}
{{- $client := .Values.postgresqlClient -}}
[{{ include "dagster-dbt-k8s.pgServiceName" . }}]
connect_timeout={{ $client.connectTimeoutSeconds }}
keepalives=1
keepalives_idle={{ $client.keepalivesIdleSeconds }}
keepalives_interval={{ $client.keepalivesIntervalSeconds }}
keepalives_count={{ $client.keepalivesCount }}
tcp_user_timeout={{ mul $client.tcpUserTimeoutSeconds 1000 }}
{{- end }}
