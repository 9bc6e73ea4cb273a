{{/*
The code locations of the workspace: codeLocation (the default entry, whose image also runs the
webserver, the daemon and the hooks), then additionalCodeLocations in their order. Each comes out
with every setting filled in (an additional location's missing keys are codeLocation's, each key
whole) and the names of its objects, as a JSON list (include ... | fromJsonArray):
  name, path (its values path, for messages), component (its pods' component label),
  image, imageRef, module, port, replicas, startupTimeoutSeconds, resources, pod,
  warehouseDatabase ("" for the warehouse's own), deploymentName, serverId, serviceName.
*/}}
{{- define "dagster-dbt-k8s.codeLocations" -}}
{{- $default := .Values.codeLocation }}
{{- $inherited := list "module" "port" "replicas" "startupTimeoutSeconds" "resources" "pod" }}
{{- $entries := list (merge (dict "path" "codeLocation" "component" "code-location" "warehouseDatabase" "") (pick $default "name" "image" | deepCopy) (pick $default "module" "port" "replicas" "startupTimeoutSeconds" "resources" "pod" | deepCopy)) }}
{{- range $index, $extra := .Values.additionalCodeLocations }}
{{- $path := printf "additionalCodeLocations[%d]" $index }}
{{- range $earlier := $entries }}
{{- if eq $earlier.name $extra.name }}
{{- fail (printf "%s.name: %q is already the name of %s; every code location needs its own name" $path $extra.name $earlier.path) }}
{{- end }}
{{- end }}
{{- $entry := dict "name" $extra.name "path" $path "component" (printf "code-location-%s" $extra.name) "warehouseDatabase" ($extra.warehouseDatabase | default "") }}
{{- $_ := set $entry "image" (merge (deepCopy $extra.image) (deepCopy $default.image)) }}
{{- range $key := $inherited }}
{{- $_ := set $entry $key (ternary (get $extra $key) (get $default $key) (hasKey $extra $key) | deepCopy) }}
{{- end }}
{{- $entries = append $entries $entry }}
{{- end }}
{{- $config := printf "%s\n---\n%s" (include "dagster-dbt-k8s.instanceYaml" .) (include "dagster-dbt-k8s.envConfigMapData" .) }}
{{- $prefix := include "dagster-dbt-k8s.fullname" . | trunc 40 | trimSuffix "-" }}
{{- range $entry := $entries }}
{{- $_ := set $entry "imageRef" (include "dagster-dbt-k8s.imageRef" (list $entry.image (printf "%s.image" $entry.path))) }}
{{- $_ = set $entry "deploymentName" (include "dagster-dbt-k8s.componentName" (list $ $entry.component)) }}
{{- /* The code servers' shared id: changes with what the definitions are loaded from (the image,
       the module, the location, dagster.yaml and the environment). It names the location's
       Service too, so it cannot depend on the workspace, which names that Service. */}}
{{- $source := printf "%s\n%s\n%v" $entry.module $entry.name $entry.port }}
{{- if $entry.warehouseDatabase }}
{{- $source = printf "%s\n%s" $source $entry.warehouseDatabase }}
{{- end }}
{{- $_ = set $entry "serverId" (printf "%s\n%s\n%s" $entry.imageRef $source $config | sha256sum | trunc 32) }}
{{- /* One Service per version of the definitions, which selects only that version's pods: the
       webserver and the daemon (restarted by the workspace's checksum) can then never load the
       location from an old server still draining behind it, and every run they launch after an
       upgrade gets the new image. */}}
{{- $_ = set $entry "serviceName" (printf "%s-code-%s" $prefix (trunc 10 $entry.serverId)) }}
{{- end }}
{{- toJson $entries }}
{{- end }}

{{/* The env var that points a location's dbt project at its own database, or nothing (call with
     list $ <location>): the warehouse target's database variable. */}}
{{- define "dagster-dbt-k8s.locationDatabaseEnvName" -}}
{{- if (index . 1).warehouseDatabase }}
{{- ternary "DBT_PG_DATABASE" "SNOWFLAKE_DATABASE" (eq (index . 0).Values.warehouse.target "postgres") }}
{{- end }}
{{- end }}

{{/* What the helm test pod checks of each location, as JSON: call with the codeLocations list. */}}
{{- define "dagster-dbt-k8s.testedLocations" -}}
{{- $tested := list }}
{{- range . }}
{{- $tested = append $tested (dict "name" .name "host" .serviceName "port" .port) }}
{{- end }}
{{- toJson $tested }}
{{- end }}

{{/* The locations' names, comma separated: call with the codeLocations list. */}}
{{- define "dagster-dbt-k8s.locationNames" -}}
{{- $names := list }}
{{- range . }}{{ $names = append $names .name }}{{ end }}
{{- join ", " $names }}
{{- end }}
