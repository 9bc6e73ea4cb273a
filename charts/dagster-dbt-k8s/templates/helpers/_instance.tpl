{{/*
The Dagster instance (dagster.yaml): the chart's own keys, then additionalInstanceConfig merged in
(none of whose keys may be one the chart sets). Without additions, the chart's text as written.
*/}}
{{- define "dagster-dbt-k8s.instanceYaml" -}}
{{- $owned := include "dagster-dbt-k8s.chartInstanceYaml" . }}
{{- with .Values.additionalInstanceConfig }}
{{- $config := $owned | fromYaml }}
{{- /* Sections whose every key belongs together: a key added to them could change what they
       are (a second storage, another launcher's settings). */}}
{{- range $section := list "storage" "run_storage" "event_log_storage" "schedule_storage" "run_launcher" "run_coordinator" }}
{{- if hasKey $.Values.additionalInstanceConfig $section }}
{{- fail (printf "additionalInstanceConfig.%s: the chart owns this section of dagster.yaml (storage, the run launcher and the run coordinator come from their own values)" $section) }}
{{- end }}
{{- end }}
{{- include "dagster-dbt-k8s.refuseChartInstanceKeys" (list $config . "additionalInstanceConfig") }}
{{- toYaml (mustMergeOverwrite $config (deepCopy .)) }}
{{- else }}
{{- $owned }}
{{- end }}
{{- end }}

{{/*
Fails on the first key of `extra` that `owned` has too, unless both values are maps (then their
keys are compared in turn): call with list <owned map> <extra map> "<value path>".
*/}}
{{- define "dagster-dbt-k8s.refuseChartInstanceKeys" -}}
{{- $owned := index . 0 }}
{{- $path := index . 2 }}
{{- range $key, $value := index . 1 }}
{{- if hasKey $owned $key }}
{{- $ownedValue := get $owned $key }}
{{- if and (kindIs "map" $ownedValue) (kindIs "map" $value) }}
{{- include "dagster-dbt-k8s.refuseChartInstanceKeys" (list $ownedValue $value (printf "%s.%s" $path $key)) }}
{{- else }}
{{- fail (printf "%s.%s: the chart sets this key of dagster.yaml from its own values (see values.yaml); set it there" $path $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The chart's own keys of dagster.yaml. Passwords are read from env vars at load time (`env:`),
so the ConfigMap holds no secret.
*/}}
{{- define "dagster-dbt-k8s.chartInstanceYaml" -}}
{{- $retries := .Values.dagsterDaemon.runRetries }}
{{- $monitoring := .Values.dagsterDaemon.runMonitoring }}
{{- $pools := .Values.concurrency.pools }}
{{- $runs := .Values.concurrency.runs }}
{{- $runExtras := include "dagster-dbt-k8s.podExtras" (list . "runLauncher.pod" .Values.runLauncher.pod true) | fromJson -}}
telemetry:
  enabled: false
storage:
  # dagster-postgres's storage, with the event log's connection kept open per process
  # (dagster_code/storage.py: a run worker otherwise opens a connection for every event it writes).
  custom:
    module: dagster_code.storage
    class: PooledPostgresStorage
    config:
      postgres_db:
        hostname:
          env: DAGSTER_PG_HOST
        port:
          env: DAGSTER_PG_PORT
        username:
          env: DAGSTER_PG_USER
        password:
          env: DAGSTER_PG_PASSWORD
        db_name:
          env: DAGSTER_PG_DB
        {{- with include "dagster-dbt-k8s.dagsterPg.params" . | fromJson }}
        params:
          {{- toYaml . | nindent 10 }}
        {{- end }}
{{ include "dagster-dbt-k8s.computeLogsYaml" . }}
run_coordinator:
  # Dagster's run queue; every run submitted gets the retry strategy unless it set one, and the
  # release tag when it selects a release asset; a run whose launch set dagster-k8s/config keys
  # beyond runLauncher.runTagK8sConfig.allowedKeys is failed unqueued (dagster_code/run_coordinator.py).
  module: dagster_code.run_coordinator
  class: PlatformRunCoordinator
  config:
    dequeue_interval_seconds: {{ .Values.concurrency.runs.dequeueIntervalSeconds }}
    retry_strategy: {{ $retries.strategy }}
    allowed_run_tag_k8s_config_keys: {{ .Values.runLauncher.runTagK8sConfig.allowedKeys | toJson }}
run_launcher:
  # dagster_k8s's K8sRunLauncher; a worker killed for memory fails its run saying so, unretried.
  module: dagster_code.run_launcher
  class: PlatformK8sRunLauncher
  config:
    job_namespace: {{ .Release.Namespace }}
    job_image: {{ include "dagster-dbt-k8s.projectImage" . }}
    image_pull_policy: {{ .Values.codeLocation.image.pullPolicy }}
    {{- with .Values.imagePullSecrets }}
    image_pull_secrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    service_account_name: {{ include "dagster-dbt-k8s.serviceAccountName" (list . "runWorker") }}
    instance_config_map: {{ include "dagster-dbt-k8s.instanceConfigMapName" . }}
    dagster_home: {{ .Values.dagsterHome }}
    load_incluster_config: true
    env_config_maps:
      - {{ include "dagster-dbt-k8s.envConfigMapName" . }}
    {{- with include "dagster-dbt-k8s.snowflakeSecretName" . }}
    env_secrets:
      - {{ . }}
    {{- end }}
    labels:
      app.kubernetes.io/name: {{ include "dagster-dbt-k8s.name" . }}
      app.kubernetes.io/instance: {{ .Release.Name }}
      app.kubernetes.io/component: run-worker
      app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
    resources:
      {{- toYaml .Values.runLauncher.resources | nindent 6 }}
    volumes:
      - name: tmp
        empty_dir: {}
      - name: instance
        config_map:
          name: {{ include "dagster-dbt-k8s.instanceConfigMapName" . }}
    volume_mounts:
      - name: tmp
        mount_path: /tmp
      - name: instance
        mount_path: {{ include "dagster-dbt-k8s.pgServiceFilePath" . }}
        sub_path: {{ include "dagster-dbt-k8s.pgServiceFileName" . }}
        read_only: true
    run_k8s_config:
      container_config:
        securityContext:
          {{- include "dagster-dbt-k8s.runContainerSecurityContext" . | nindent 10 }}
        env:
          {{- include "dagster-dbt-k8s.secretEnv" . | nindent 10 }}
          {{- with $runExtras.env }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        {{- with $runExtras.envFrom }}
        envFrom:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $runExtras.volumeMounts }}
        volumeMounts:
          {{- toYaml . | nindent 10 }}
        {{- end }}
      {{- if or $runExtras.podAnnotations $runExtras.podLabels }}
      pod_template_spec_metadata:
        {{- with $runExtras.podAnnotations }}
        annotations:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $runExtras.podLabels }}
        labels:
          {{- toYaml . | nindent 10 }}
        {{- end }}
      {{- end }}
      pod_spec_config:
        # The in-process executor starts no Jobs: the run worker calls no API (see
        # dagster-dbt-k8s.mountsServiceAccountToken).
        automountServiceAccountToken: {{ include "dagster-dbt-k8s.mountsServiceAccountToken" (list . "runWorker") | eq "true" }}
        securityContext:
          {{- include "dagster-dbt-k8s.podSecurityContext" . | nindent 10 }}
        {{- with include "dagster-dbt-k8s.podScheduling" $runExtras }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $runExtras.volumes }}
        volumes:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $runExtras.initContainers }}
        initContainers:
          {{- include "dagster-dbt-k8s.userContainers" (list . (include "dagster-dbt-k8s.runContainerSecurityContext" $)) | nindent 10 }}
        {{- end }}
      job_spec_config:
        # A failed run worker is never restarted by Kubernetes: run retries re-execute what failed.
        backoffLimit: 0
        # An evicted pod counts as failed only once it has terminated, not as soon as it starts
        # terminating: otherwise run monitoring sees a failed Job with no active pod and fails the
        # run before the worker, still inside its grace period, reports UNEXPECTED_TERMINATION.
        podReplacementPolicy: Failed
        ttlSecondsAfterFinished: {{ .Values.runLauncher.jobTtlSecondsAfterFinished }}
concurrency:
  pools:
    granularity: {{ $pools.granularity }}
    default_limit: {{ $pools.defaultLimit }}
  runs:
    max_concurrent_runs: {{ $runs.maxConcurrentRuns }}
    tag_concurrency_limits:
      {{- toYaml (include "dagster-dbt-k8s.tagConcurrencyLimits" . | fromJsonArray) | nindent 6 }}
run_retries:
  enabled: {{ $retries.enabled }}
  max_retries: {{ $retries.maxRetries }}
  retry_on_asset_or_op_failure: {{ $retries.retryOnAssetOrOpFailure }}
run_monitoring:
  enabled: {{ $monitoring.enabled }}
  start_timeout_seconds: {{ $monitoring.startTimeoutSeconds }}
  cancel_timeout_seconds: {{ $monitoring.cancelTimeoutSeconds }}
  poll_interval_seconds: {{ $monitoring.pollIntervalSeconds }}
  max_resume_run_attempts: {{ $monitoring.maxResumeRunAttempts }}
  free_slots_after_run_end_seconds: {{ $monitoring.freeSlotsAfterRunEndSeconds }}
{{- end }}

{{/* The workspace: every code location, each a gRPC server behind its Service. */}}
{{- define "dagster-dbt-k8s.workspaceYaml" -}}
load_from:
{{- range $location := include "dagster-dbt-k8s.codeLocations" . | fromJsonArray }}
  - grpc_server:
      host: {{ $location.serviceName }}
      port: {{ $location.port }}
      location_name: {{ $location.name }}
{{- end }}
{{- end }}

{{/*
Run-tag limits: one run at a time per value of the release tag, which the run coordinator puts on
every run that writes blue (not a value: no values file can drop it), then concurrency.runs'.
*/}}
{{- define "dagster-dbt-k8s.tagConcurrencyLimits" -}}
{{- $releaseTag := "dagster-dbt-k8s/release" }}
{{- range $index, $limit := .Values.concurrency.runs.tagConcurrencyLimits }}
{{- if eq (toString $limit.key) $releaseTag }}
{{- fail (printf "concurrency.runs.tagConcurrencyLimits[%d]: the key %s is the platform's: releases run one at a time, whatever the values; remove this entry" $index $releaseTag) }}
{{- end }}
{{- end }}
{{- $release := dict "key" $releaseTag "value" (dict "applyLimitPerUniqueValue" true) "limit" 1 }}
{{- prepend (.Values.concurrency.runs.tagConcurrencyLimits | default list) $release | toJson }}
{{- end }}
