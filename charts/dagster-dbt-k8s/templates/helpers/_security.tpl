{{/*
Security contexts that pass the Pod Security Standard "restricted". Not configurable beyond
the UID/GID and readOnlyRootFilesystem: the chart promises "restricted" for every pod.
*/}}

{{/* Pod security context of pods running the project image. */}}
{{- define "dagster-dbt-k8s.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context of the chart's containers running the project image. */}}
{{- define "dagster-dbt-k8s.containerSecurityContext" -}}
{{- include "dagster-dbt-k8s.projectContainerSecurityContext" (list . .Values.securityContext.readOnlyRootFilesystem) }}
{{- end }}

{{/* Container security context of run pods (created by the K8sRunLauncher). */}}
{{- define "dagster-dbt-k8s.runContainerSecurityContext" -}}
{{- include "dagster-dbt-k8s.projectContainerSecurityContext" (list . .Values.runLauncher.readOnlyRootFilesystem) }}
{{- end }}

{{/* Call with list $ <readOnlyRootFilesystem>. */}}
{{- define "dagster-dbt-k8s.projectContainerSecurityContext" -}}
{{- $root := index . 0 -}}
runAsNonRoot: true
runAsUser: {{ $root.Values.securityContext.runAsUser }}
runAsGroup: {{ $root.Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ index . 1 }}
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod security context of PostgreSQL. */}}
{{- define "dagster-dbt-k8s.postgresql.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.postgresql.runAsUser }}
runAsGroup: {{ .Values.postgresql.runAsGroup }}
fsGroup: {{ .Values.postgresql.runAsGroup }}
# Skips the recursive chown of the data volume on restarts when its root already matches.
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context of PostgreSQL: its writable paths are volumes. */}}
{{- define "dagster-dbt-k8s.postgresql.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.postgresql.runAsUser }}
runAsGroup: {{ .Values.postgresql.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}
