# shellcheck shell=bash disable=SC2034  # settings for the scripts that source this file
# Settings shared by the cluster scripts. Source it; do not run it.
# shellcheck source=../../hack/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/hack/lib.sh"

# The cluster's name and kubeconfig: make up's by default, both from the environment otherwise.
# shellcheck source=../../hack/deployment.sh
source "${REPO_ROOT}/hack/deployment.sh"

CLUSTER_DIR="${REPO_ROOT}/k8s_tests/cluster"
# upstream: pull kindest/node; local: build it here; auto: try a pull, build when it fails.
NODE_IMAGE_SOURCE="${NODE_IMAGE_SOURCE:-auto}"
# kind publishes node images per release; override when the pinned tag is not among them.
UPSTREAM_NODE_IMAGE="${UPSTREAM_NODE_IMAGE:-docker.io/kindest/node:${KUBERNETES_VERSION}}"

# Per-version build outputs; a step is skipped when its output exists.
GO_BUILD_DIR="${CACHE_DIR}/go-build"
IMAGE_BUILD_DIR="${CACHE_DIR}/image-build"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# Builds share the machine with teammates: stay polite.
NICE="${NICE:-nice -n 10}"
export DOCKER_BUILDKIT=0
BUILD_LOCK="${CACHE_DIR}/cluster-build.lock"
BUILD_LOCK_TIMEOUT="${BUILD_LOCK_TIMEOUT:-3600}"

# take_build_lock: one build, cluster creation or clean-up at a time per cache directory; two at
# once would debootstrap into the same directory. Scripts run by the holder inherit the lock.
take_build_lock() {
  [[ "${CLUSTER_BUILD_LOCK_HELD:-}" == 1 ]] && return
  exec 9>"${BUILD_LOCK}"
  if ! flock -n 9; then
    log "another cluster build holds ${BUILD_LOCK}: waiting for it (at most ${BUILD_LOCK_TIMEOUT}s)"
    flock -w "${BUILD_LOCK_TIMEOUT}" 9 ||
      die "timed out after ${BUILD_LOCK_TIMEOUT}s waiting for ${BUILD_LOCK}; is a build stuck?"
  fi
  export CLUSTER_BUILD_LOCK_HELD=1
}
