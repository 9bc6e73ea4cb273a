#!/usr/bin/env bash
# `make up`: from nothing to Dagster on a kind cluster with the UI reachable. Steps: the kind
# cluster (k8s_tests/cluster/up.sh) -> the images (hack/build-images.sh, `make image`) -> `kind load`
# of both images -> `helm upgrade --install --wait` of the chart on its embedded PostgreSQL ->
# a port-forward to the webserver (background, pid file) -> raw_data_job launched once through the
# GraphQL API and waited for -> the UI URL. Every step prints its duration; everything cached is
# reused. The chaos suite and the benchmark run this same script with UP_STEPS and a namespace of
# their own (run_up in k8s_tests/harness/deployment.py).
#
# Environment:
#   CLUSTER_NAME        kind cluster (default dagster-dbt-k8s)
#   KUBECONFIG_PATH     its kubeconfig (default ~/.cache/dagster-dbt-k8s/kubeconfig; rewritten by `kind get kubeconfig`)
#   NAMESPACE           namespace of the Helm release (default dagster)
#   RELEASE_NAME        Helm release (default dagster)
#   VALUES_FILES        extra values files, space separated (default none: the chart's defaults)
#   HELM_TIMEOUT        helm --wait timeout (default 10m)
#   LOCAL_PORT          local port of the webserver port-forward (default 3000)
#   RAW_DATA_TIMEOUT    seconds to wait for raw_data_job to succeed (default 600)
#   UP_STEPS            steps to run, space separated (default: all, in this order):
#                       cluster images load install port-forward raw-data
set -o errexit -o nounset -o pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deployment.sh
source "$(dirname "${BASH_SOURCE[0]}")/deployment.sh"

VALUES_FILES="${VALUES_FILES:-}"
HELM_TIMEOUT="${HELM_TIMEOUT:-10m}"
LOCAL_PORT="${LOCAL_PORT:-3000}"
RAW_DATA_TIMEOUT="${RAW_DATA_TIMEOUT:-600}"
UP_STEPS="${UP_STEPS:-cluster images load install port-forward raw-data}"
PORT_FORWARD_START_TIMEOUT=60

CHART_DIR="${REPO_ROOT}/charts/dagster-dbt-k8s"
CODE_LOCATION_NAME=""
GRAPHQL_URL="http://127.0.0.1:${LOCAL_PORT}/graphql"

kubectl_ns() {
  kubectl --kubeconfig "${KUBECONFIG_PATH}" --namespace "${NAMESPACE}" "$@"
}

step_cluster() {
  CLUSTER_NAME="${CLUSTER_NAME}" KUBECONFIG_PATH="${KUBECONFIG_PATH}" "${REPO_ROOT}/k8s_tests/cluster/up.sh" single
}

step_images() {
  "${REPO_ROOT}/hack/build-images.sh"
}

write_kubeconfig() {
  command -v kind >/dev/null || die "kind is not on PATH: run \`make cluster\` once (it builds kind into ${CACHE_BIN})"
  # Not `kind get clusters | grep -q`: with pipefail, grep exiting early fails the pipeline.
  local clusters
  clusters="$(kind get clusters 2>/dev/null)"
  grep -qx "${CLUSTER_NAME}" <<<"${clusters}" ||
    die "no kind cluster named ${CLUSTER_NAME}: run \`make cluster\` (or include the cluster step in UP_STEPS)"
  mkdir -p "$(dirname "${KUBECONFIG_PATH}")"
  kind get kubeconfig --name "${CLUSTER_NAME}" >"${KUBECONFIG_PATH}"
}

step_load() {
  local image
  for image in "${PROJECT_IMAGE}" "${POSTGRES_IMAGE}"; do
    docker image inspect "${image}" >/dev/null 2>&1 || die "${image} is not in the local Docker engine: run \`make image\`"
    run_step "kind load ${image}" kind load docker-image "${image}" --name "${CLUSTER_NAME}"
  done
}

step_install() {
  "${REPO_ROOT}/hack/install-helm.sh"
  local values_args=() file
  for file in ${VALUES_FILES}; do
    [[ -f "${file}" ]] || die "values file ${file} does not exist (VALUES_FILES)"
    values_args+=(--values "${file}")
  done
  log "helm upgrade --install ${RELEASE_NAME} into namespace ${NAMESPACE} (waits up to ${HELM_TIMEOUT})"
  helm --kubeconfig "${KUBECONFIG_PATH}" upgrade --install "${RELEASE_NAME}" "${CHART_DIR}" \
    --namespace "${NAMESPACE}" --create-namespace --wait --timeout "${HELM_TIMEOUT}" "${values_args[@]}" ||
    {
      kubectl_ns get pods -o wide >&2 || true
      die "helm upgrade --install ${RELEASE_NAME} did not become ready within ${HELM_TIMEOUT}; pods above"
    }
}

graphql() {
  local query="$1" variables="${2:-{\}}"
  jq -n --arg query "${query}" --argjson variables "${variables}" '{query: $query, variables: $variables}' |
    curl --silent --show-error --fail --max-time 30 -H 'Content-Type: application/json' --data @- "${GRAPHQL_URL}"
}

webserver_answers() {
  graphql '{ version }' | jq -e '.data.version' >/dev/null
}

# release_object KIND COMPONENT: KIND/NAME of the release's object of that component, found by the
# chart's labels rather than by re-deriving its names (templates/helpers/_names.tpl).
release_object() {
  local found
  found="$(kubectl_ns get "$1" -o name \
    -l "app.kubernetes.io/instance=${RELEASE_NAME},app.kubernetes.io/component=$2")"
  [[ -n "${found}" ]] || die "no $1 of component $2 in release ${RELEASE_NAME}, namespace ${NAMESPACE}: is the chart installed?"
  echo "${found}"
}

# The code locations' names as installed (codeLocation.name, maybe overridden, first; then
# additionalCodeLocations'), from the release's workspace ConfigMap; read once the chart is
# installed. The first is the default location, the one raw_data_job is launched in.
CODE_LOCATION_NAMES=()
read_code_location_name() {
  [[ -n "${CODE_LOCATION_NAME}" ]] && return
  local workspace
  workspace="$(release_object configmap workspace)"
  mapfile -t CODE_LOCATION_NAMES < <(kubectl_ns get "${workspace}" -o jsonpath='{.data.workspace\.yaml}' |
    sed -n -E 's/^[[:space:]]*location_name:[[:space:]]*"?([^"]+)"?[[:space:]]*$/\1/p')
  ((${#CODE_LOCATION_NAMES[@]} > 0)) || die "no location_name in ${workspace} (namespace ${NAMESPACE})"
  CODE_LOCATION_NAME="${CODE_LOCATION_NAMES[0]}"
}

# Every code location of the workspace has loaded.
code_location_loaded() {
  local loaded
  loaded="$(graphql '{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }' |
    jq -r '.data.workspaceOrError.locationEntries[] | select(.locationOrLoadError.__typename == "RepositoryLocation") | .name')"
  local name
  for name in "${CODE_LOCATION_NAMES[@]}"; do
    grep -qxF -- "${name}" <<<"${loaded}" || return 1
  done
}

step_port_forward() {
  local service
  service="$(release_object service webserver)"
  stop_port_forward
  # setsid: the port-forward outlives this script and `make`; stop it with the command printed below.
  setsid kubectl --kubeconfig "${KUBECONFIG_PATH}" --namespace "${NAMESPACE}" port-forward \
    "${service}" "${LOCAL_PORT}:80" >"${PORT_FORWARD_LOG}" 2>&1 </dev/null &
  echo $! >"${PORT_FORWARD_PID_FILE}"
  wait_for "the webserver to answer GraphQL on ${GRAPHQL_URL} (port-forward log: ${PORT_FORWARD_LOG})" \
    "${PORT_FORWARD_START_TIMEOUT}" webserver_answers
  read_code_location_name
  wait_for "code locations ${CODE_LOCATION_NAMES[*]} to load in the webserver (if definitions failed to load: kubectl -n ${NAMESPACE} logs deploy/<the location's Deployment>)" \
    180 code_location_loaded
}

RUN_STATUS=""
run_finished() {
  # shellcheck disable=SC2016 # a GraphQL variable
  RUN_STATUS="$(graphql 'query ($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }' \
    "$(jq -n --arg id "$1" '{id: $id}')" | jq -r '.data.runOrError.status')"
  [[ "${RUN_STATUS}" == SUCCESS || "${RUN_STATUS}" == FAILURE || "${RUN_STATUS}" == CANCELED ]]
}

step_raw_data() {
  # shellcheck disable=SC2016 # GraphQL variables, not shell ones
  local launch='mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
    ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }'
  local params response run_id
  read_code_location_name
  params="$(jq -n --arg location "${CODE_LOCATION_NAME}" '{params: {selector: {repositoryLocationName: $location,
    repositoryName: "__repository__", jobName: "raw_data_job"}, runConfigData: {}}}')"
  response="$(graphql "${launch}" "${params}")"
  run_id="$(jq -r '.data.launchRun.run.runId // empty' <<<"${response}")"
  [[ -n "${run_id}" ]] || die "launching raw_data_job failed: ${response}"
  log "raw_data_job run ${run_id} launched; waiting up to ${RAW_DATA_TIMEOUT}s (run pod: kubectl -n ${NAMESPACE} get pods -l job-name=dagster-run-${run_id})"
  local deadline=$((SECONDS + RAW_DATA_TIMEOUT))
  until run_finished "${run_id}"; do
    ((SECONDS < deadline)) || die "raw_data_job run ${run_id} not finished after ${RAW_DATA_TIMEOUT}s; last status: ${RUN_STATUS}"
    sleep 3
  done
  [[ "${RUN_STATUS}" == SUCCESS ]] ||
    die "raw_data_job run ${run_id} ended ${RUN_STATUS}: see http://127.0.0.1:${LOCAL_PORT}/runs/${run_id} or kubectl -n ${NAMESPACE} logs job/dagster-run-${run_id}"
}

main() {
  local start=${SECONDS} step
  for step in ${UP_STEPS}; do
    case "${step}" in
      cluster) run_step "kind cluster ${CLUSTER_NAME}" step_cluster ;;
      images) run_step "images (make image)" step_images ;;
      load) write_kubeconfig && run_step "kind load images" step_load ;;
      install) write_kubeconfig && run_step "helm release ${RELEASE_NAME} in namespace ${NAMESPACE}" step_install ;;
      port-forward) write_kubeconfig && run_step "port-forward to the webserver" step_port_forward ;;
      raw-data) run_step "raw_data_job" step_raw_data ;;
      *) die "unknown step '${step}' in UP_STEPS (cluster images load install port-forward raw-data)" ;;
    esac
  done
  log "up in $((SECONDS - start))s"
  if [[ " ${UP_STEPS} " == *" port-forward "* ]]; then
    cat >&2 <<EOF

Dagster UI: http://127.0.0.1:${LOCAL_PORT}
  port-forward pid $(cat "${PORT_FORWARD_PID_FILE}") (log ${PORT_FORWARD_LOG}); stop it with:
    kill \$(cat ${PORT_FORWARD_PID_FILE})
  kubectl: export KUBECONFIG=${KUBECONFIG_PATH}; kubectl -n ${NAMESPACE} get pods
  remove everything: make down
EOF
  fi
}

main "$@"
