{{/*
Checks of dagsterWebserver.ingress the schema cannot express: at least one host while enabled,
each host once, and TLS only for hosts the Ingress serves (a certificate for any other host
would never be used).
*/}}
{{- define "dagster-dbt-k8s.checkWebserverIngress" -}}
{{- $ingress := .Values.dagsterWebserver.ingress }}
{{- if not $ingress.hosts }}
{{- fail "dagsterWebserver.ingress.hosts: list at least one host when dagsterWebserver.ingress.enabled is true (e.g. [{host: dagster.example.com}])" }}
{{- end }}
{{- $hosts := list }}
{{- range $i, $entry := $ingress.hosts }}
{{- if has $entry.host $hosts }}
{{- fail (printf "dagsterWebserver.ingress.hosts[%d].host: %s is listed twice; give it one entry with all its paths" $i $entry.host) }}
{{- end }}
{{- $hosts = append $hosts $entry.host }}
{{- end }}
{{- range $i, $tls := $ingress.tls }}
{{- range $tls.hosts }}
{{- if not (has . $hosts) }}
{{- fail (printf "dagsterWebserver.ingress.tls[%d].hosts: %s is not one of dagsterWebserver.ingress.hosts; add it there or remove it here" $i .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
