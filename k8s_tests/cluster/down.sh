#!/usr/bin/env bash
# Deletes the project's kind cluster (CLUSTER_NAME, default dagster-dbt-k8s). Caches stay.
set -o errexit -o nounset -o pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

main() {
  take_build_lock
  if ! command -v kind >/dev/null || ! docker info >/dev/null 2>&1; then
    log "no kind or no Docker engine: no cluster to delete"
    return
  fi
  if kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
    run_step "delete cluster ${CLUSTER_NAME}" kind delete cluster --name "${CLUSTER_NAME}"
  else
    log "no cluster named ${CLUSTER_NAME}"
  fi
  rm -f "${KUBECONFIG_PATH}"
}

main "$@"
