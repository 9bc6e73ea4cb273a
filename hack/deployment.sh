# shellcheck shell=bash disable=SC2034  # settings for the scripts that source this file
# What `make up` (hack/up.sh), `make down` (hack/down.sh) and the cluster scripts
# (k8s_tests/cluster/common.sh) name: the cluster, the release and the port-forward to its
# webserver. Source it after lib.sh; every value can be overridden from the environment.

CLUSTER_NAME="${CLUSTER_NAME:-dagster-dbt-k8s}"
KUBECONFIG_PATH="${KUBECONFIG_PATH:-${CACHE_DIR}/kubeconfig}"
NAMESPACE="${NAMESPACE:-dagster}"
RELEASE_NAME="${RELEASE_NAME:-dagster}"
PORT_FORWARD_PID_FILE="${PORT_FORWARD_PID_FILE:-${CACHE_DIR}/port-forward-${CLUSTER_NAME}-${NAMESPACE}.pid}"
PORT_FORWARD_LOG="${CACHE_DIR}/port-forward-${CLUSTER_NAME}-${NAMESPACE}.log"

stop_port_forward() {
  if [[ -f "${PORT_FORWARD_PID_FILE}" ]]; then
    kill "$(cat "${PORT_FORWARD_PID_FILE}")" 2>/dev/null || true
    rm -f "${PORT_FORWARD_PID_FILE}"
  fi
}
