{{/*
Step logs (instance `compute_logs`, values `computeLogs`). noop keeps none beyond the pods' own
logs. s3 stages each step's stdout and stderr under /tmp (an emptyDir in every pod the chart
makes, run pods included) and uploads them to a bucket, where the webserver reads them after the
run's pod is gone. Every process that loads the instance gets the credentials: run workers and
the webserver, but also the daemon (backfill logs) and the code servers (sensor and schedule
logs).
*/}}

{{/* Where a process stages captured logs before uploading them: inside the /tmp emptyDir. */}}
{{- define "dagster-dbt-k8s.computeLogsLocalDir" -}}
/tmp/dagster-compute-logs
{{- end }}

{{/* The `compute_logs` section of dagster.yaml. */}}
{{- define "dagster-dbt-k8s.computeLogsYaml" -}}
{{- $logs := .Values.computeLogs }}
{{- if eq $logs.manager "s3" }}
{{- $s3 := $logs.s3 }}
{{- if and $s3.caBundlePath (not $s3.verifyCertificates) }}
{{- fail "computeLogs.s3.caBundlePath is set while computeLogs.s3.verifyCertificates is false, which ignores it: drop one of them" }}
{{- end }}
compute_logs:
  module: dagster_aws.s3.compute_log_manager
  class: S3ComputeLogManager
  config:
    bucket: {{ required "computeLogs.s3.bucket is required when computeLogs.manager is s3: name the bucket the step logs go to" $s3.bucket | quote }}
    prefix: {{ $s3.prefix | quote }}
    local_dir: {{ include "dagster-dbt-k8s.computeLogsLocalDir" . }}
    {{- with $s3.endpointUrl }}
    endpoint_url: {{ . | quote }}
    {{- end }}
    {{- with $s3.region }}
    region: {{ . | quote }}
    {{- end }}
    verify: {{ $s3.verifyCertificates }}
    {{- with $s3.caBundlePath }}
    verify_cert_path: {{ . | quote }}
    {{- end }}
    {{- if $s3.uploadIntervalSeconds }}
    upload_interval: {{ $s3.uploadIntervalSeconds }}
    {{- end }}
    {{- with $s3.uploadExtraArgs }}
    upload_extra_args:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- else }}
# Step output goes to the pods' logs only (kubectl logs), gone with the run's Job.
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
{{- end }}
{{- end }}

{{/*
Env vars (a list of EnvVar, each line starting with "- ") of every container that loads the
instance, for the S3 client: the credentials from computeLogs.s3.existingSecret and the region.
Nothing with the noop manager.
*/}}
{{- define "dagster-dbt-k8s.computeLogsEnv" -}}
{{- $s3 := .Values.computeLogs.s3 }}
{{- if eq .Values.computeLogs.manager "s3" }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ required "computeLogs.s3.existingSecret is required when computeLogs.manager is s3: name a Secret holding the access key ID and secret access key" $s3.existingSecret }}
      key: {{ $s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.secretAccessKeyKey }}
{{- with $s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Names of computeLogsEnv's env vars, as a JSON list: pod extras may not set them. */}}
{{- define "dagster-dbt-k8s.computeLogsEnvNames" -}}
{{- $names := list }}
{{- range include "dagster-dbt-k8s.computeLogsEnv" . | fromYamlArray }}
{{- $names = append $names .name }}
{{- end }}
{{- toJson $names }}
{{- end }}
