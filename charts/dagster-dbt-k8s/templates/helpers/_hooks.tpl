{{/* Pieces of the hook Jobs (migration, pools). */}}

{{/*
Waits until Dagster's database accepts a login, bounded by migrate.waitForDatabaseSeconds: on
install the embedded PostgreSQL may still be initialising when the hooks and code servers start.
*/}}
{{- define "dagster-dbt-k8s.waitForDatabaseScript" -}}
import os, sys, time
import psycopg2
env = os.environ
target = f"{env['DAGSTER_PG_HOST']}:{env['DAGSTER_PG_PORT']}/{env['DAGSTER_PG_DB']}"
timeout = int(env["WAIT_FOR_DATABASE_SECONDS"])
deadline = time.monotonic() + timeout
while True:
    try:
        psycopg2.connect(
            host=env["DAGSTER_PG_HOST"], port=env["DAGSTER_PG_PORT"], user=env["DAGSTER_PG_USER"],
            password=env["DAGSTER_PG_PASSWORD"], dbname=env["DAGSTER_PG_DB"], connect_timeout=5,
        ).close()
        print(f"database {target} accepts connections", flush=True)
        break
    except psycopg2.OperationalError as error:
        if time.monotonic() > deadline:
            sys.exit(f"database {target} still refused a login after {timeout}s (migrate.waitForDatabaseSeconds): {error}")
        print(f"waiting for database {target}: {str(error).strip()}", flush=True)
        time.sleep(3)
{{- end }}

{{/* Removes the pools that are no longer listed in concurrency.pools.limits (no CLI for it). */}}
{{- define "dagster-dbt-k8s.prunePoolsScript" -}}
import json, os
from dagster import DagsterInstance
wanted = set(json.loads(os.environ["DAGSTER_POOL_LIMITS"]))
with DagsterInstance.get() as instance:
    storage = instance.event_log_storage
    for pool in storage.get_pool_limits():
        # Pools that only carry the default limit were never set by this hook: leave them.
        if pool.name not in wanted and not pool.from_default:
            storage.delete_concurrency_limit(pool.name)
            print(f"removed pool {pool.name} (limit {pool.limit}): not in concurrency.pools.limits", flush=True)
{{- end }}

{{/*
The wait-for-database initContainer (of the hooks and the code servers), after the user's
initContainers (a database proxy run as a native sidecar is up before it). Call with
list $ <pod extras> [<code location>]: a code server's waits in the location's image.
*/}}
{{- define "dagster-dbt-k8s.waitForDatabaseInitContainers" -}}
{{- $root := index . 0 -}}
{{- $extras := index . 1 -}}
{{- with $extras.initContainers -}}
{{ include "dagster-dbt-k8s.userContainers" (list . (include "dagster-dbt-k8s.containerSecurityContext" $root)) }}
{{ end -}}
- name: wait-for-database
  {{- include "dagster-dbt-k8s.projectContainer" . | nindent 2 }}
    - name: WAIT_FOR_DATABASE_SECONDS
      value: {{ $root.Values.migrate.waitForDatabaseSeconds | quote }}
  command:
    - python
    - -c
    - |
      {{- include "dagster-dbt-k8s.waitForDatabaseScript" $root | nindent 6 }}
  resources:
    {{- include "dagster-dbt-k8s.hookResources" $root | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    {{- include "dagster-dbt-k8s.pgServiceFileMount" $root | nindent 4 }}
    {{- with $extras.volumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{- define "dagster-dbt-k8s.hookResources" -}}
requests:
  cpu: 50m
  memory: 256Mi
limits:
  memory: 512Mi
{{- end }}
