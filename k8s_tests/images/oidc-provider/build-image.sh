#!/usr/bin/env bash
# Builds the OpenID Connect provider the auth proxy's kind test logs in at (OIDC_PROVIDER_IMAGE in
# versions.env): main.go here, on zitadel/oidc from the Go module proxy (go.mod, go.sum), built
# static and packed alone with `docker import`, since no registry can be pulled from.
# k8s_tests/test_webserver_auth_proxy.py runs it (so does `make auth-proxy-image`).
# An image that already exists locally is left alone: bump OIDC_PROVIDER_IMAGE when this recipe or
# main.go changes.
#
# Environment:
#   NICE   a prefix for the compiler, e.g. "nice -n 15" (default none)
set -o errexit -o nounset -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../../../hack/lib.sh"

SRC_DIR="${REPO_ROOT}/k8s_tests/images/oidc-provider"
NICE="${NICE:-}"
# Not the project's UID: this is a stand-in for the user's identity provider.
SERVER_UID=65532

build_rootfs() {
  local root="$1"
  mkdir -p "${root}/tmp"
  command -v go >/dev/null || die "go is not on PATH: install Go 1.26 or newer (e.g. /usr/local/go/bin) and rerun"
  (cd "${SRC_DIR}" && CGO_ENABLED=0 ${NICE} go build -trimpath -ldflags "-s -w" -o "${root}/oidc-provider" .) ||
    die "go build of ${SRC_DIR} failed (its modules come from the Go module proxy: is it reachable?)"
}

import_image() {
  local root="$1"
  tar -C "${root}" -c . | docker import \
    --change 'ENTRYPOINT ["/oidc-provider"]' \
    --change "USER ${SERVER_UID}:${SERVER_UID}" \
    --message "k8s_tests/images/oidc-provider: zitadel/oidc provider for the auth proxy test" \
    - "${OIDC_PROVIDER_IMAGE}" >/dev/null
}

main() {
  if docker image inspect "${OIDC_PROVIDER_IMAGE}" >/dev/null 2>&1; then
    log "cached: ${OIDC_PROVIDER_IMAGE}"
    return
  fi
  local root
  root="$(mktemp -d)"
  # shellcheck disable=SC2064 # the path is fixed now
  trap "rm -rf '${root}'" EXIT
  run_step "go build k8s_tests/images/oidc-provider" build_rootfs "${root}"
  run_step "docker import ${OIDC_PROVIDER_IMAGE}" import_image "${root}"
  # Without its settings the binary exits at once, naming the first missing one.
  local output
  output="$(docker run --rm --pull never --network none "${OIDC_PROVIDER_IMAGE}" 2>&1 || true)"
  grep -q ISSUER <<<"${output}" ||
    die "${OIDC_PROVIDER_IMAGE} failed its smoke test (expected a complaint about ISSUER, got: ${output})"
}

main "$@"
