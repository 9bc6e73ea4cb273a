#!/usr/bin/env bash
# `make down`: stops `make up`'s port-forward, uninstalls the Helm release, deletes the kind cluster
# (k8s_tests/cluster/down.sh). Caches and the built images stay, so the next `make up` is warm.
#
# Environment: CLUSTER_NAME, KUBECONFIG_PATH, NAMESPACE, RELEASE_NAME (as hack/up.sh).
set -o errexit -o nounset -o pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# shellcheck source=deployment.sh
source "$(dirname "${BASH_SOURCE[0]}")/deployment.sh"

UNINSTALL_TIMEOUT="${UNINSTALL_TIMEOUT:-5m}"

uninstall_release() {
  local clusters=""
  command -v kind >/dev/null && clusters="$(kind get clusters 2>/dev/null)"
  if ! grep -qx "${CLUSTER_NAME}" <<<"${clusters}"; then
    log "no cluster named ${CLUSTER_NAME}: nothing to uninstall"
    return
  fi
  kind get kubeconfig --name "${CLUSTER_NAME}" >"${KUBECONFIG_PATH}"
  if helm --kubeconfig "${KUBECONFIG_PATH}" status "${RELEASE_NAME}" --namespace "${NAMESPACE}" >/dev/null 2>&1; then
    helm --kubeconfig "${KUBECONFIG_PATH}" uninstall "${RELEASE_NAME}" --namespace "${NAMESPACE}" \
      --wait --timeout "${UNINSTALL_TIMEOUT}"
  else
    log "no Helm release ${RELEASE_NAME} in namespace ${NAMESPACE}"
  fi
}

main() {
  local start=${SECONDS}
  run_step "stop the port-forward" stop_port_forward
  run_step "uninstall ${RELEASE_NAME}" uninstall_release
  run_step "delete cluster ${CLUSTER_NAME}" "${REPO_ROOT}/k8s_tests/cluster/down.sh"
  log "down in $((SECONDS - start))s"
}

main "$@"
