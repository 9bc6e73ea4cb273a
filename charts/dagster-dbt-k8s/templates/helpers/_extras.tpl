{{/*
Scheduling and pod extras: podDefaults, overridden by a component's `pod` block.
Which wins (documented above podDefaults in values.yaml):
- nodeSelector, affinity, priorityClassName: the component's value replaces the default when
  it is not empty;
- podAnnotations, podLabels: merged, the component's value winning per key;
- every list: the defaults, then the component's; tolerations start with the chart's own of a
  lost node (nodeLoss), on every pod but PostgreSQL's;
- pods that must finish (hooks, helm test, run pods) take no extraContainers.
*/}}

{{/* The extras of one pod as JSON: call with list $ "<component>.pod" <its pod block> <finite pod?>. */}}
{{- define "dagster-dbt-k8s.podExtras" -}}
{{- $root := index . 0 -}}
{{- $path := index . 1 -}}
{{- $own := index . 2 | default dict -}}
{{- $finite := index . 3 -}}
{{- $defaults := $root.Values.podDefaults -}}
{{- include "dagster-dbt-k8s.checkPodExtras" (list $root "podDefaults" $defaults) -}}
{{- include "dagster-dbt-k8s.checkPodExtras" (list $root $path $own) -}}
{{- $extras := dict -}}
{{- range $key := list "nodeSelector" "affinity" "priorityClassName" }}
{{- $_ := set $extras $key (get $own $key | default (get $defaults $key)) }}
{{- end }}
{{- range $key := list "podAnnotations" "podLabels" }}
{{- $_ := set $extras $key (merge (deepCopy (get $own $key | default dict)) (get $defaults $key | default dict)) }}
{{- end }}
{{- range $key := list "tolerations" "topologySpreadConstraints" "env" "envFrom" "volumes" "volumeMounts" "initContainers" "extraContainers" }}
{{- $_ := set $extras $key (concat (get $defaults $key | default list) (get $own $key | default list)) }}
{{- end }}
{{- $_ := set $extras "tolerations" (concat (include "dagster-dbt-k8s.nodeLossTolerations" (list $root $path) | fromJsonArray) $extras.tolerations) }}
{{- if $finite }}
{{- $_ := set $extras "extraContainers" list }}
{{- end }}
{{- toJson $extras }}
{{- end }}

{{/*
Refuses what would break the chart's own objects: its labels (selectors), its checksum
annotation, env vars it sets, volume and container names it uses.
*/}}
{{- define "dagster-dbt-k8s.checkPodExtras" -}}
{{- $root := index . 0 -}}
{{- $path := index . 1 -}}
{{- $extras := index . 2 | default dict -}}
{{- $chartLabels := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "helm.sh/chart" "dagster-dbt-k8s/code-server-id" }}
{{- range $key, $_ := get $extras "podLabels" | default dict }}
{{- if has $key $chartLabels }}
{{- fail (printf "%s.podLabels.%s is set by the chart (its selectors use it): use another label" $path $key) }}
{{- end }}
{{- end }}
{{- range $annotation := list "checksum/config" "checksum/passwords" }}
{{- if hasKey (get $extras "podAnnotations" | default dict) $annotation }}
{{- fail (printf "%s.podAnnotations.%s is set by the chart (it restarts pods when a ConfigMap or a password changes): use another annotation" $path $annotation) }}
{{- end }}
{{- end }}
{{- $chartEnv := list "DAGSTER_HOME" "DAGSTER_PG_PASSWORD" "DBT_PG_PASSWORD" "DAGSTER_CURRENT_IMAGE" "WAIT_FOR_DATABASE_SECONDS" "DAGSTER_POOL_LIMITS" "PRUNE_POOLS_SCRIPT" "POSTGRES_SUPERUSER" "POSTGRES_SUPERUSER_PASSWORD" "POSTGRES_DAGSTER_PASSWORD" "POSTGRES_WAREHOUSE_PASSWORD" "POSTGRES_ROLES" "POSTGRES_DATABASES" "PGDATA" "HOME" "WEBSERVER_URL" "AUTH_PROXY" "CODE_LOCATIONS" }}
{{- $chartEnv = concat $chartEnv (include "dagster-dbt-k8s.envConfigMapData" $root | fromYaml | keys) }}
{{- $chartEnv = concat $chartEnv (include "dagster-dbt-k8s.computeLogsEnvNames" $root | fromJsonArray) }}
{{- range $i, $var := get $extras "env" | default list }}
{{- if has $var.name $chartEnv }}
{{- fail (printf "%s.env[%d]: %s is set by the chart from its values: set the value it comes from instead" $path $i $var.name) }}
{{- end }}
{{- end }}
{{- range $i, $volume := get $extras "volumes" | default list }}
{{- if has $volume.name (list "tmp" "instance" "workspace" "run" "data") }}
{{- fail (printf "%s.volumes[%d]: the chart already has a volume named %s: rename it" $path $i $volume.name) }}
{{- end }}
{{- end }}
{{- $chartContainers := list "code-server" "webserver" "daemon" "postgresql" "migrate" "pools" "wait-for-database" "test" "dagster" }}
{{- range $list := list "initContainers" "extraContainers" }}
{{- range $i, $container := get $extras $list | default list }}
{{- if has $container.name $chartContainers }}
{{- fail (printf "%s.%s[%d]: the chart already has a container named %s: rename it" $path $list $i $container.name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
User containers with the chart's "restricted" securityContext under their own (the schema only
lets theirs keep or narrow "restricted"): call with list <containers> <securityContext YAML>.
*/}}
{{- define "dagster-dbt-k8s.userContainers" -}}
{{- $context := index . 1 | fromYaml -}}
{{- $containers := list -}}
{{- range index . 0 }}
{{- $container := deepCopy . }}
{{- $_ := set $container "securityContext" (merge (deepCopy ($container.securityContext | default dict)) (deepCopy $context)) }}
{{- $containers = append $containers $container }}
{{- end }}
{{- toYaml $containers }}
{{- end }}

{{/*
Pod-level scheduling fields of the extras that are set, as YAML (nothing when none is): call with
the extras (the code location renders topologySpreadConstraints itself, after its own).
*/}}
{{- define "dagster-dbt-k8s.podScheduling" -}}
{{- $fields := dict -}}
{{- range $key := list "priorityClassName" "nodeSelector" "affinity" "tolerations" "topologySpreadConstraints" }}
{{- with get $ $key }}
{{- $_ := set $fields $key . }}
{{- end }}
{{- end }}
{{- if $fields }}
{{- toYaml $fields }}
{{- end }}
{{- end }}

{{/*
The chart's tolerations of a node that stopped answering, as a JSON list: Kubernetes deletes a
pod nodeLoss.tolerationSeconds after its node turned not-ready or unreachable (instead of its
default 300 s), so that a Deployment replaces it and the run launcher fails a run whose pod it
was. Not PostgreSQL's pod: its volume is on that node, a replacement could not start elsewhere.
Call with list $ "<component>.pod".
*/}}
{{- define "dagster-dbt-k8s.nodeLossTolerations" -}}
{{- $root := index . 0 -}}
{{- $tolerations := list -}}
{{- if ne (index . 1) "postgresql.pod" }}
{{- range $taint := list "node.kubernetes.io/not-ready" "node.kubernetes.io/unreachable" }}
{{- $tolerations = append $tolerations (dict "key" $taint "operator" "Exists" "effect" "NoExecute" "tolerationSeconds" $root.Values.nodeLoss.tolerationSeconds) }}
{{- end }}
{{- end }}
{{- toJson $tolerations }}
{{- end }}
