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

{{/*
Whether the dbt postgres target uses the embedded PostgreSQL ("true" or empty): then as its own
role, postgresql.warehouseUser, with its password in the embedded server's Secret.
*/}}
{{- define "dagster-dbt-k8s.warehouseOnEmbedded" -}}
{{- if and .Values.postgresql.enabled (eq .Values.warehouse.target "postgres") (not .Values.warehouse.postgres.host) }}
{{- with .Values.warehouse.postgres.user }}
{{- fail (printf "warehouse.postgres.user (%s) names a role on a server given by warehouse.postgres.host; with the embedded PostgreSQL the warehouse role is postgresql.warehouseUser: set that instead" .) }}
{{- end }}
{{- with .Values.warehouse.postgres.existingSecret }}
{{- fail (printf "warehouse.postgres.existingSecret (%s) holds the password of a server given by warehouse.postgres.host; with the embedded PostgreSQL the warehouse role's password is in postgresql.existingSecret (key postgresql.warehousePasswordKey): set that instead" .) }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}

{{/* The dbt postgres target: empty values fall back to Dagster's own server, user and password,
     except on the embedded server, where the warehouse has its own role. */}}
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
{{- if include "dagster-dbt-k8s.warehouseOnEmbedded" . }}
{{- .Values.postgresql.warehouseUser }}
{{- else }}
{{- default (include "dagster-dbt-k8s.dagsterPg.user" .) .Values.warehouse.postgres.user }}
{{- end }}
{{- end }}

{{- define "dagster-dbt-k8s.warehousePg.secretName" -}}
{{- default (include "dagster-dbt-k8s.dagsterPg.secretName" .) .Values.warehouse.postgres.existingSecret }}
{{- end }}

{{- define "dagster-dbt-k8s.warehousePg.secretKey" -}}
{{- if include "dagster-dbt-k8s.warehouseOnEmbedded" . }}
{{- .Values.postgresql.warehousePasswordKey }}
{{- else if .Values.warehouse.postgres.existingSecret }}
{{- .Values.warehouse.postgres.passwordKey }}
{{- else }}
{{- include "dagster-dbt-k8s.dagsterPg.secretKey" . }}
{{- end }}
{{- end }}

{{/*
Databases of the embedded PostgreSQL with their owners, "database:owner" separated by spaces
(POSTGRES_DATABASES): created at every start when missing, each reachable by its owner only.
*/}}
{{- define "dagster-dbt-k8s.postgresql.databases" -}}
{{- $pg := .Values.postgresql }}
{{- $owners := dict $pg.database $pg.user }}
{{- $names := list $pg.database }}
{{- if include "dagster-dbt-k8s.warehouseOnEmbedded" . }}
{{- $warehouses := list .Values.warehouse.postgres.database }}
{{- range .Values.additionalCodeLocations }}
{{- with .warehouseDatabase }}
{{- $warehouses = append $warehouses . }}
{{- end }}
{{- end }}
{{- range $warehouses }}
{{- if eq . $pg.database }}
{{- fail (printf "the warehouse database %s is postgresql.database, Dagster's storage: give the warehouse (warehouse.postgres.database, additionalCodeLocations[].warehouseDatabase) a database of its own" .) }}
{{- end }}
{{- $_ := set $owners . $pg.warehouseUser }}
{{- $names = append $names . }}
{{- end }}
{{- end }}
{{- $entries := list }}
{{- range $names | uniq }}
{{- if not (regexMatch "^[A-Za-z0-9_][-A-Za-z0-9_.]*$" .) }}
{{- fail (printf "database name %q of the embedded PostgreSQL: use letters, digits, _, - and . only" .) }}
{{- end }}
{{- $entries = append $entries (printf "%s:%s" . (get $owners .)) }}
{{- end }}
{{- $entries | join " " }}
{{- end }}

{{/*
Login roles of the embedded PostgreSQL, "role:ENV_VAR" separated by spaces (POSTGRES_ROLES): the
env var holds the role's password, from the Secret. Never superusers.
*/}}
{{- define "dagster-dbt-k8s.postgresql.roles" -}}
{{- $pg := .Values.postgresql }}
{{- $roles := list (printf "%s:POSTGRES_DAGSTER_PASSWORD" $pg.user) }}
{{- if include "dagster-dbt-k8s.warehouseOnEmbedded" . }}
{{- $roles = append $roles (printf "%s:POSTGRES_WAREHOUSE_PASSWORD" $pg.warehouseUser) }}
{{- end }}
{{- $roles | join " " }}
{{- end }}

{{/* Refuses one role for two purposes: each role of the embedded server has one job. */}}
{{- define "dagster-dbt-k8s.postgresql.checkRoles" -}}
{{- $pg := .Values.postgresql }}
{{- if eq $pg.user $pg.superuser }}
{{- fail (printf "postgresql.user and postgresql.superuser are both %s: Dagster's role is not the superuser; name another" $pg.user) }}
{{- end }}
{{- if and (include "dagster-dbt-k8s.warehouseOnEmbedded" .) (has $pg.warehouseUser (list $pg.user $pg.superuser)) }}
{{- fail (printf "postgresql.warehouseUser %s is also postgresql.user or postgresql.superuser: the warehouse has a role of its own; name another" $pg.warehouseUser) }}
{{- end }}
{{- end }}

{{/*
The embedded server's passwords, as JSON {"<key>": "<password>"}: each from values, else from the
Secret in the cluster (lookup), else generated. Computed once per render and kept in .Values, so
the Secret and the checksum annotations agree on a generated one.
*/}}
{{- define "dagster-dbt-k8s.postgresql.passwords" -}}
{{- $pg := .Values.postgresql }}
{{- if not (hasKey $pg "_renderedPasswords") }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "dagster-dbt-k8s.postgresqlName" .) }}
{{- $data := (and $existing $existing.data) | default dict }}
{{- $passwords := dict }}
{{- range $pair := list (list $pg.passwordKey $pg.password) (list $pg.warehousePasswordKey $pg.warehousePassword) (list $pg.superuserPasswordKey $pg.superuserPassword) }}
{{- $key := index $pair 0 }}
{{- $password := index $pair 1 }}
{{- if not $password }}
{{- $password = ternary (index $data $key | default "" | b64dec) (randAlphaNum 32) (hasKey $data $key) }}
{{- end }}
{{- $_ := set $passwords $key $password }}
{{- end }}
{{- $_ := set $pg "_renderedPasswords" $passwords }}
{{- end }}
{{- get $pg "_renderedPasswords" | toJson }}
{{- end }}

{{/*
A checksum of the passwords of the Secret the chart renders (empty with postgresql.existingSecret
or an external server): pods whose env comes from that Secret restart when one changes.
*/}}
{{- define "dagster-dbt-k8s.postgresql.passwordsChecksum" -}}
{{- if and .Values.postgresql.enabled (not .Values.postgresql.existingSecret) }}
{{- include "dagster-dbt-k8s.postgresql.passwords" . | sha256sum }}
{{- end }}
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
