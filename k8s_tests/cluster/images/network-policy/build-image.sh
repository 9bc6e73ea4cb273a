#!/usr/bin/env bash
# Builds the kind cluster's NetworkPolicy enforcer (NETWORK_POLICY_IMAGE in versions.env): main.go
# and rules.go here, on client-go from the Go module proxy (go.mod, go.sum), built static and packed
# alone with `docker import`, since no registry can be pulled from. k8s_tests/cluster/up.sh runs it
# and installs network-policy.yaml. An image that already exists locally is left alone: bump
# NETWORK_POLICY_IMAGE when this recipe or the Go code changes.
#
# Environment:
#   NICE   a prefix for the compiler, e.g. "nice -n 15" (default none)
set -o errexit -o nounset -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../../../../hack/lib.sh"

SRC_DIR="${REPO_ROOT}/k8s_tests/cluster/images/network-policy"
NICE="${NICE:-}"

build_rootfs() {
  local root="$1"
  command -v go >/dev/null || die "go is not on PATH: install Go 1.24 or newer (e.g. /usr/local/go/bin) and rerun"
  (cd "${SRC_DIR}" && CGO_ENABLED=0 ${NICE} go build -trimpath -ldflags "-s -w" -o "${root}/network-policy" .) ||
    die "go build of ${SRC_DIR} failed (its modules come from the Go module proxy: is it reachable?)"
}

import_image() {
  local root="$1"
  # Runs as root: it chroots into the node and runs the node's iptables (network-policy.yaml).
  tar -C "${root}" -c . | docker import \
    --change 'ENTRYPOINT ["/network-policy"]' \
    --message "k8s_tests/cluster/images/network-policy: NetworkPolicy ingress and egress enforcer" \
    - "${NETWORK_POLICY_IMAGE}" >/dev/null
}

main() {
  if docker image inspect "${NETWORK_POLICY_IMAGE}" >/dev/null 2>&1; then
    log "cached: ${NETWORK_POLICY_IMAGE}"
    return
  fi
  local root
  root="$(mktemp -d)"
  # shellcheck disable=SC2064 # the path is fixed now
  trap "rm -rf '${root}'" EXIT
  run_step "go build k8s_tests/cluster/images/network-policy" build_rootfs "${root}"
  run_step "docker import ${NETWORK_POLICY_IMAGE}" import_image "${root}"
  # Without NODE_NAME the binary exits at once, naming it: proof that it runs in the image.
  local output
  output="$(docker run --rm --pull never --network none "${NETWORK_POLICY_IMAGE}" 2>&1 || true)"
  grep -q NODE_NAME <<<"${output}" ||
    die "${NETWORK_POLICY_IMAGE} failed its smoke test (expected a complaint about NODE_NAME, got: ${output})"
}

main "$@"
