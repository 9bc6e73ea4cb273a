{{/* Pieces shared by every pod that runs the project image. */}}

{{/*
Whether a pod of the account's component mounts its token ("true" or empty): call with list $
<key of serviceAccount>. The webserver and the daemon call the API; the migrate hook's
`dagster instance migrate` prints the instance's info, which builds the run launcher, which loads
the in-cluster config (token and CA) though it calls nothing. With resume attempts above 0 every
process that loads the instance builds the run launcher (Dagster checks it can resume), so then
every project pod needs the token. No other process reads it.
*/}}
{{- define "dagster-dbt-k8s.mountsServiceAccountToken" -}}
{{- $root := index . 0 -}}
{{- if or (has (index . 1) (list "webserver" "daemon" "migrate")) (gt (int $root.Values.dagsterDaemon.runMonitoring.maxResumeRunAttempts) 0) -}}
true
{{- end -}}
{{- end }}

{{/*
Pod-level fields: the component's service account and whether its token is mounted, pull
secrets, security context, the pod extras' scheduling. Call with list $ <pod extras> <key of
serviceAccount> [<token reader>]: the reader (default the key) names the process for
dagster-dbt-k8s.mountsServiceAccountToken, e.g. "migrate" for the hooks' account.
*/}}
{{- define "dagster-dbt-k8s.projectPodSpec" -}}
{{- $root := index . 0 -}}
{{- $account := index . 2 -}}
{{- $reader := $account -}}
{{- if gt (len .) 3 }}{{ $reader = index . 3 }}{{ end -}}
serviceAccountName: {{ include "dagster-dbt-k8s.serviceAccountName" (list $root $account) }}
automountServiceAccountToken: {{ include "dagster-dbt-k8s.mountsServiceAccountToken" (list $root $reader) | eq "true" }}
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
