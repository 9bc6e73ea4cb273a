{{/* Pieces shared by every pod that runs the project image. */}}

{{/*
Pod-level fields: service account, pull secrets, security context. The token stays mounted:
every dagster process that loads the instance (`dagster instance migrate` included) builds the
K8sRunLauncher, which loads the in-cluster config.
*/}}
{{- define "dagster-dbt-k8s.projectPodSpec" -}}
serviceAccountName: {{ include "dagster-dbt-k8s.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "dagster-dbt-k8s.podSecurityContext" . | nindent 2 }}
{{- end }}

{{/* Container fields: image, pull policy, security context, the env contract. */}}
{{- define "dagster-dbt-k8s.projectContainer" -}}
image: {{ include "dagster-dbt-k8s.projectImage" . }}
imagePullPolicy: {{ .Values.codeLocation.image.pullPolicy }}
securityContext:
  {{- include "dagster-dbt-k8s.containerSecurityContext" . | nindent 2 }}
envFrom:
  {{- include "dagster-dbt-k8s.envFrom" . | nindent 2 }}
env:
  - name: DAGSTER_HOME
    value: {{ .Values.dagsterHome }}
  {{- include "dagster-dbt-k8s.secretEnv" . | nindent 2 }}
{{- end }}

{{/* Volumes: /tmp, and the instance and workspace ConfigMaps. */}}
{{- define "dagster-dbt-k8s.projectVolumes" -}}
- name: tmp
  emptyDir: {}
- name: instance
  configMap:
    name: {{ include "dagster-dbt-k8s.instanceConfigMapName" . }}
- name: workspace
  configMap:
    name: {{ include "dagster-dbt-k8s.workspaceConfigMapName" . }}
{{- end }}

{{/* dagster.yaml goes in as one file so DAGSTER_HOME itself stays the image's directory. */}}
{{- define "dagster-dbt-k8s.projectVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: instance
  mountPath: {{ printf "%s/dagster.yaml" .Values.dagsterHome }}
  subPath: dagster.yaml
  readOnly: true
- name: workspace
  mountPath: /opt/dagster/workspace
  readOnly: true
{{- end }}

{{/* The command line of the workspace file, for the webserver and the daemon. */}}
{{- define "dagster-dbt-k8s.workspaceFile" -}}
/opt/dagster/workspace/workspace.yaml
{{- end }}
