{{/* Pieces of the NetworkPolicies (networkPolicy in values.yaml). */}}

{{/* Every pod of this release, whatever its component: the name and instance selector labels. */}}
{{- define "dagster-dbt-k8s.releasePodLabels" -}}
{{- toYaml (omit (include "dagster-dbt-k8s.selectorLabels" (list . "any") | fromYaml) "app.kubernetes.io/component") }}
{{- end }}

{{/* A NetworkPolicy's podSelector for one component (call with list $ "component"). */}}
{{- define "dagster-dbt-k8s.componentPodSelector" -}}
podSelector:
  matchLabels:
    {{- include "dagster-dbt-k8s.selectorLabels" . | nindent 4 }}
{{- end }}

{{/*
Egress rules of a project pod (call with list $ "component"): the embedded PostgreSQL, the code
servers (for their callers), the Kubernetes API server (for the webserver and the daemon), then
networkPolicy.extraEgress and the webserver's own. DNS is the release-wide policy's.
*/}}
{{- define "dagster-dbt-k8s.projectEgress" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $values := $root.Values.networkPolicy -}}
{{- if and $root.Values.postgresql.enabled (ne $component "test") }}
# The embedded PostgreSQL: Dagster's storage and the warehouse.
- to:
    - {{- include "dagster-dbt-k8s.componentPodSelector" (list $root "postgresql") | nindent 6 }}
  ports:
    - protocol: TCP
      port: postgresql
{{- end }}
{{- if has $component (list "webserver" "webserver-read-only" "daemon" "run-worker" "test") }}
# The code servers' gRPC port: loading the definitions, running them.
- to:
    {{- range $location := include "dagster-dbt-k8s.codeLocations" $root | fromJsonArray }}
    - {{- include "dagster-dbt-k8s.componentPodSelector" (list $root $location.component) | nindent 6 }}
    {{- end }}
  ports:
    - protocol: TCP
      port: grpc
{{- end }}
{{- if has $component (list "webserver" "webserver-read-only" "daemon") }}
# The Kubernetes API server (the run launcher's calls, dagster-dbt-k8s.serviceAccountName).
{{- include "dagster-dbt-k8s.kubernetesApiEgress" $root | nindent 0 }}
{{- end }}
{{- if eq $component "test" }}
# The webserver's GraphQL API.
- to:
    - {{- include "dagster-dbt-k8s.componentPodSelector" (list $root "webserver") | nindent 6 }}
  ports:
    - protocol: TCP
      port: http
{{- end }}
{{- if ne $component "test" }}
{{- with $values.extraEgress }}
# networkPolicy.extraEgress
{{ toYaml . }}
{{- end }}
{{- end }}
{{- if has $component (list "webserver" "webserver-read-only") }}
{{- with $values.webserver.extraEgress }}
# networkPolicy.webserver.extraEgress
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The API server as an egress rule. Egress policies match the address after kube-proxy translated
the Service `kubernetes`: the API server's endpoints. networkPolicy.kubernetesApi.to when set;
else the Service's endpoints, looked up at install (one /32 per address); where lookup has no
cluster (`helm template`) the ports open to any address, which values.yaml says.
*/}}
{{- define "dagster-dbt-k8s.kubernetesApiEgress" -}}
{{- $api := .Values.networkPolicy.kubernetesApi -}}
{{- $peers := $api.to -}}
{{- if not $peers -}}
{{- /* The API server's own EndpointSlice (named like its Service; v1 Endpoints is deprecated). */ -}}
{{- $slice := lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "kubernetes" -}}
{{- range $endpoint := ($slice.endpoints | default list) -}}
{{- range $address := ($endpoint.addresses | default list) -}}
{{- $peers = append $peers (dict "ipBlock" (dict "cidr" (printf "%s/32" $address))) -}}
{{- end -}}
{{- end -}}
{{- end }}
- {{- with $peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- range $port := $api.ports }}
    - protocol: TCP
      port: {{ $port }}
    {{- end }}
{{- end }}
