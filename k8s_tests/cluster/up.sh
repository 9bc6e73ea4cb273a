#!/usr/bin/env bash
# Brings up the project's kind cluster and writes its kubeconfig.
#   up.sh [single|multi]    single: one control-plane node (default); multi: plus two workers.
# The node image is kindest/node for the pinned Kubernetes version where it can be pulled, and is
# built on this machine (build-binaries.sh, build-node-image.sh) where it cannot. Then it installs
# the NetworkPolicy enforcer (images/network-policy) on every node.
#
# Environment:
#   CLUSTER_NAME             cluster name (default dagster-dbt-k8s)
#   KUBECONFIG_PATH          where to write the kubeconfig (default ${CACHE_DIR}/kubeconfig)
#   NODE_IMAGE_SOURCE        auto (default), upstream or local
#   NODE_PULL_TIMEOUT        seconds to try pulling the upstream node image in auto mode (default 30)
#   CLUSTER_READY_TIMEOUT    seconds to wait for nodes and kube-system pods (default 300)
#   KEEP_FAILED_CLUSTER      1 to keep a cluster whose creation failed (default 0)
set -o errexit -o nounset -o pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NODE_PULL_TIMEOUT="${NODE_PULL_TIMEOUT:-30}"
CLUSTER_READY_TIMEOUT="${CLUSTER_READY_TIMEOUT:-300}"
KEEP_FAILED_CLUSTER="${KEEP_FAILED_CLUSTER:-0}"
LOGS_DIR="${CACHE_DIR}/logs"

has_cap_sys_resource() {
  local bnd
  bnd="$(awk '/^CapBnd:/ {print $2}' /proc/self/status)"
  (((16#${bnd} >> 24) & 1))
}

ensure_docker() {
  "${REPO_ROOT}/hack/docker-engine.sh"
}

ensure_tools() {
  "${CLUSTER_DIR}/build-binaries.sh" kind kubectl
}

# Prints the node image to use, building it when it cannot be pulled.
node_image() {
  local source="${NODE_IMAGE_SOURCE}"
  if [[ "${source}" == auto ]]; then
    # A node image built here before means a machine without a registry: never try the network
    # again (the build steps are cached, and rebuild only what a version change touched).
    if [[ -s "${IMAGE_BUILD_DIR}/node-image" ]]; then
      source=local
    elif docker image inspect "${UPSTREAM_NODE_IMAGE}" >/dev/null 2>&1 ||
      timeout "${NODE_PULL_TIMEOUT}" docker pull "${UPSTREAM_NODE_IMAGE}" >&2; then
      source=upstream
    else
      log "cannot pull ${UPSTREAM_NODE_IMAGE} within ${NODE_PULL_TIMEOUT}s: building the node image here"
      source=local
    fi
  fi
  case "${source}" in
    upstream)
      docker image inspect "${UPSTREAM_NODE_IMAGE}" >/dev/null 2>&1 || docker pull "${UPSTREAM_NODE_IMAGE}" >&2 ||
        die "cannot pull ${UPSTREAM_NODE_IMAGE}: set UPSTREAM_NODE_IMAGE, or NODE_IMAGE_SOURCE=local to build it here"
      echo "${UPSTREAM_NODE_IMAGE}"
      ;;
    local)
      "${CLUSTER_DIR}/build-binaries.sh" >&2
      "${CLUSTER_DIR}/build-node-image.sh" >&2
      cat "${IMAGE_BUILD_DIR}/node-image"
      ;;
    *) die "NODE_IMAGE_SOURCE must be auto, upstream or local, not '${source}'" ;;
  esac
}

# kind_config LAYOUT: the cluster's kind configuration on stdout.
kind_config() {
  local layout="$1"
  cat <<CONFIG
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: ${CLUSTER_NAME}
nodes:
- role: control-plane
CONFIG
  case "${layout}" in
    single) ;;
    multi) printf -- '- role: worker\n- role: worker\n' ;;
  esac
  # Without CAP_SYS_RESOURCE nothing in a node may lower an oom_score_adj, which kubelet asks
  # containerd to do for sandboxes and Guaranteed pods.
  if ! has_cap_sys_resource; then
    cat <<'CONFIG'
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri"]
    restrict_oom_score_adj = true
CONFIG
  fi
}

cluster_exists() {
  kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"
}

on_create_failure() {
  local dir
  dir="${LOGS_DIR}/${CLUSTER_NAME}-$(date -u +%Y%m%dT%H%M%SZ)"
  log "cluster creation failed; exporting logs to ${dir}"
  kind export logs --name "${CLUSTER_NAME}" "${dir}" >/dev/null 2>&1 || true
  if [[ "${KEEP_FAILED_CLUSTER}" != 1 ]]; then
    kind delete cluster --name "${CLUSTER_NAME}" >/dev/null 2>&1 || true
  fi
}

create_cluster() {
  local layout="$1" image="$2" config
  if cluster_exists; then
    local nodes expected=1
    [[ "${layout}" == single ]] || expected=3
    nodes="$(kind get nodes --name "${CLUSTER_NAME}" | wc -l)"
    ((nodes == expected)) ||
      die "cluster ${CLUSTER_NAME} exists with ${nodes} node(s), not the ${expected} of layout ${layout}: make cluster-down first"
    log "cluster ${CLUSTER_NAME} exists: reusing it (make cluster-down to start over)"
    kind export kubeconfig --name "${CLUSTER_NAME}" --kubeconfig "${KUBECONFIG_PATH}"
    return
  fi
  config="$(mktemp)"
  kind_config "${layout}" >"${config}"
  trap on_create_failure ERR
  kind create cluster --name "${CLUSTER_NAME}" --image "${image}" --config "${config}" \
    --kubeconfig "${KUBECONFIG_PATH}" --retain --wait 0s
  trap - ERR
  rm -f "${config}"
}

nodes_ready() {
  ! kubectl --kubeconfig "${KUBECONFIG_PATH}" get nodes --no-headers |
    awk '$2 != "Ready" {found = 1} END {exit !found}'
}

kube_system_running() {
  local pods
  pods="$(kubectl --kubeconfig "${KUBECONFIG_PATH}" get pods -n kube-system --no-headers)"
  [[ -n "${pods}" ]] && ! awk '$3 != "Running" {found = 1} END {exit !found}' <<<"${pods}"
}

wait_for_cluster() {
  wait_for "the API server's /readyz" "${CLUSTER_READY_TIMEOUT}" \
    kubectl --kubeconfig "${KUBECONFIG_PATH}" get --raw /readyz
  wait_for "every node to be Ready" "${CLUSTER_READY_TIMEOUT}" nodes_ready
  wait_for "every kube-system pod to be Running" "${CLUSTER_READY_TIMEOUT}" kube_system_running
  wait_for "the default StorageClass" "${CLUSTER_READY_TIMEOUT}" \
    kubectl --kubeconfig "${KUBECONFIG_PATH}" -n local-path-storage rollout status \
    deployment/local-path-provisioner --timeout=5s
}

# The NetworkPolicy enforcer (images/network-policy): kindnetd enforces none, and the chart ships
# NetworkPolicies the suites prove. Built here, loaded with `kind load`, one pod per node.
install_network_policy() {
  local dir="${CLUSTER_DIR}/images/network-policy"
  NICE="${NICE}" "${dir}/build-image.sh"
  kind load docker-image "${NETWORK_POLICY_IMAGE}" --name "${CLUSTER_NAME}"
  sed "s|image: NETWORK_POLICY_IMAGE|image: ${NETWORK_POLICY_IMAGE}|" "${dir}/network-policy.yaml" |
    kubectl --kubeconfig "${KUBECONFIG_PATH}" apply -f -
  kubectl --kubeconfig "${KUBECONFIG_PATH}" -n kube-system rollout status daemonset/network-policy \
    --timeout "${CLUSTER_READY_TIMEOUT}s" ||
    die "timed out after ${CLUSTER_READY_TIMEOUT}s waiting for DaemonSet kube-system/network-policy to run on every node (kubectl -n kube-system logs ds/network-policy)"
}

main() {
  take_build_lock
  local layout="${1:-single}" image
  [[ "${layout}" == single || "${layout}" == multi ]] || die "layout must be single or multi, not '${layout}'"
  run_step "docker engine" ensure_docker
  # The node image first: built here, it compiles kubectl with the other Kubernetes binaries,
  # which ensure_tools then only links (alone, kubectl is a long compile of its own).
  run_step "node image" node_image >"${CACHE_DIR}/.node-image"
  run_step "kind and kubectl" ensure_tools
  image="$(cat "${CACHE_DIR}/.node-image")"
  log "node image: ${image}"
  run_step "create cluster ${CLUSTER_NAME} (${layout})" create_cluster "${layout}" "${image}"
  run_step "wait for cluster ${CLUSTER_NAME}" wait_for_cluster
  run_step "NetworkPolicy enforcer" install_network_policy
  kubectl --kubeconfig "${KUBECONFIG_PATH}" get nodes -o wide
  log "cluster ${CLUSTER_NAME} is up; kubeconfig: ${KUBECONFIG_PATH}"
  log "  export KUBECONFIG=${KUBECONFIG_PATH}"
}

main "$@"
