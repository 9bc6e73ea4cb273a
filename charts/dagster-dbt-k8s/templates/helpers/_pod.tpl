{{/* Pieces shared by every pod that runs the project image. */}}

{{/*
Pod-level fields: service account, pull secrets, security context, the pod extras' scheduling
(call with list $ <pod extras>). The token stays mounted:
every dagster process that loads the instance (`dagster instance migrate` included) builds the
K8sRunLauncher, which loads the in-cluster config.
*/}}
{{- define "dagster-dbt-k8s.projectPodSpec" -}}
{{- $root := index . 0 -}}
serviceAccountName: {{ include "dagster-dbt-k8s.serviceAccountName" $root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "dagster-dbt-k8s.podSecurityContext" $root | nindent 2 }}
{{- with include "dagster-dbt-k8s.podScheduling" (index . 1) }}
{{ . }}
{{- end }}
{{- end }}

{{/*
Container fields: image, pull policy, security context, the env contract, then the pod extras'
envFrom and env. Call with list $ <pod extras> [<code location>]: the image is the location's
(one of dagster-dbt-k8s.codeLocations), by default codeLocation's. `env` comes last, for callers
to add to.
*/}}
{{- define "dagster-dbt-k8s.projectContainer" -}}
{{- $root := index . 0 -}}
{{- $extras := index . 1 -}}
{{- if gt (len .) 2 -}}
image: {{ (index . 2).imageRef }}
imagePullPolicy: {{ (index . 2).image.pullPolicy }}
{{- else -}}
image: {{ include "dagster-dbt-k8s.projectImage" $root }}
imagePullPolicy: {{ $root.Values.codeLocation.image.pullPolicy }}
{{- end }}
securityContext:
  {{- include "dagster-dbt-k8s.containerSecurityContext" $root | nindent 2 }}
envFrom:
  {{- include "dagster-dbt-k8s.envFrom" $root | nindent 2 }}
  {{- with $extras.envFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
env:
  - name: DAGSTER_HOME
    value: {{ $root.Values.dagsterHome }}
  {{- include "dagster-dbt-k8s.secretEnv" $root | nindent 2 }}
  {{- with $extras.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Volumes: /tmp, the instance and workspace ConfigMaps, the pod extras'. Call with list $ <pod extras>. */}}
{{- define "dagster-dbt-k8s.projectVolumes" -}}
{{- $root := index . 0 -}}
- name: tmp
  emptyDir: {}
- name: instance
  configMap:
    name: {{ include "dagster-dbt-k8s.instanceConfigMapName" $root }}
- name: workspace
  configMap:
    name: {{ include "dagster-dbt-k8s.workspaceConfigMapName" $root }}
{{- with (index . 1).volumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
dagster.yaml and the libpq service file go in as single files so DAGSTER_HOME itself stays the
image's directory; then the pod extras' mounts. Call with list $ <pod extras>.
*/}}
{{- define "dagster-dbt-k8s.projectVolumeMounts" -}}
{{- $root := index . 0 -}}
- name: tmp
  mountPath: /tmp
- name: instance
  mountPath: {{ printf "%s/dagster.yaml" $root.Values.dagsterHome }}
  subPath: dagster.yaml
  readOnly: true
{{ include "dagster-dbt-k8s.pgServiceFileMount" $root }}
- name: workspace
  mountPath: /opt/dagster/workspace
  readOnly: true
{{- with (index . 1).volumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The command line of the workspace file, for the webserver and the daemon. */}}
{{- define "dagster-dbt-k8s.workspaceFile" -}}
/opt/dagster/workspace/workspace.yaml
{{- end }}
