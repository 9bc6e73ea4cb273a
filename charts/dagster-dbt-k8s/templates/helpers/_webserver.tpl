{{/*
The webserver Deployments: the webserver, and the read-only one for viewers when
dagsterWebserver.readOnlyReplica.enabled. A JSON list of {component, replicas, readOnly}.
*/}}
{{- define "dagster-dbt-k8s.webserverVariants" -}}
{{- $webserver := .Values.dagsterWebserver }}
{{- $variants := list (dict "component" "webserver" "replicas" $webserver.replicas "readOnly" $webserver.readOnly) }}
{{- if $webserver.readOnlyReplica.enabled }}
{{- $variants = append $variants (dict "component" "webserver-read-only" "replicas" $webserver.readOnlyReplica.replicas "readOnly" true) }}
{{- end }}
{{- toJson $variants }}
{{- end }}

{{/* Port dagster-webserver listens on inside its pod. */}}
{{- define "dagster-dbt-k8s.webserverPort" -}}
3000
{{- end }}

{{/*
Checks of dagsterWebserver.authProxy the schema cannot express: what the proxy needs to start
and to let anyone in at all.
*/}}
{{- define "dagster-dbt-k8s.checkAuthProxy" -}}
{{- $proxy := .Values.dagsterWebserver.authProxy }}
{{- range $key := list "issuerUrl" "clientId" "existingSecret" }}
{{- if not (index $proxy $key) }}
{{- fail (printf "dagsterWebserver.authProxy.%s: required when dagsterWebserver.authProxy.enabled is true (see values.yaml)" $key) }}
{{- end }}
{{- end }}
{{- if not $proxy.emailDomains }}
{{- fail "dagsterWebserver.authProxy.emailDomains: list at least one domain (e.g. [example.com], or [\"*\"] for any user the provider logs in); an empty list lets no one in" }}
{{- end }}
{{- end }}

{{/*
The oauth2-proxy sidecar: the pod's `http` port, passing authenticated requests to the webserver
on loopback. The secrets come as environment variables from the user's Secret, never as flags
(flags show in `ps` and in the pod spec).
*/}}
{{- define "dagster-dbt-k8s.authProxyContainer" -}}
{{- $proxy := .Values.dagsterWebserver.authProxy -}}
name: auth-proxy
image: {{ include "dagster-dbt-k8s.imageRef" (list $proxy.image "dagsterWebserver.authProxy.image") }}
imagePullPolicy: {{ $proxy.image.pullPolicy }}
securityContext:
  {{- include "dagster-dbt-k8s.projectContainerSecurityContext" (list . true) | nindent 2 }}
args:
  - --http-address=0.0.0.0:{{ $proxy.port }}
  - --upstream=http://127.0.0.1:{{ include "dagster-dbt-k8s.webserverPort" . }}/
  - --provider=oidc
  - {{ printf "--oidc-issuer-url=%s" $proxy.issuerUrl | quote }}
  - {{ printf "--client-id=%s" $proxy.clientId | quote }}
  {{- with $proxy.redirectUrl }}
  - {{ printf "--redirect-url=%s" . | quote }}
  {{- end }}
  - --cookie-secure={{ $proxy.cookieSecure }}
  {{- range $proxy.emailDomains }}
  - {{ printf "--email-domain=%s" . | quote }}
  {{- end }}
  {{- range $proxy.allowedGroups }}
  - {{ printf "--allowed-group=%s" . | quote }}
  {{- end }}
  # Straight to the provider's login, no "Sign in with" page of the proxy's own.
  - --skip-provider-button=true
  # Kubelet's probes of /ping every few seconds would fill the log.
  - --silence-ping-logging=true
  {{- range $proxy.extraArgs }}
  - {{ . | quote }}
  {{- end }}
env:
  - name: OAUTH2_PROXY_CLIENT_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ $proxy.existingSecret }}
        key: {{ $proxy.clientSecretKey }}
  - name: OAUTH2_PROXY_COOKIE_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ $proxy.existingSecret }}
        key: {{ $proxy.cookieSecretKey }}
ports:
  - name: http
    containerPort: {{ $proxy.port }}
    protocol: TCP
# /ping answers without a session and without asking the webserver (the webserver container has probes of its own).
readinessProbe:
  httpGet:
    path: /ping
    port: http
  periodSeconds: 10
  timeoutSeconds: 5
livenessProbe:
  httpGet:
    path: /ping
    port: http
  periodSeconds: 30
  timeoutSeconds: 10
  failureThreshold: 5
resources:
  {{- toYaml $proxy.resources | nindent 2 }}
# Read-only root: /tmp is the pod's emptyDir, as in the chart's other containers.
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/*
A probe of the webserver's /server_info. Behind the proxy the webserver listens on loopback,
which kubelet's httpGet cannot reach (it dials the pod IP), and an unauthenticated route through
the proxy would be a hole: the container asks itself. Call with list $ <probe fields YAML>.
*/}}
{{- define "dagster-dbt-k8s.webserverProbe" -}}
{{- $root := index . 0 -}}
{{- if $root.Values.dagsterWebserver.authProxy.enabled }}
exec:
  command:
    - python
    - -c
    - import urllib.request; urllib.request.urlopen("http://127.0.0.1:{{ include "dagster-dbt-k8s.webserverPort" $root }}/server_info", timeout=5)
{{- else }}
httpGet:
  path: /server_info
  port: http
{{- end }}
{{ index . 1 }}
{{- end }}
