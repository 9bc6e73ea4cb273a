#!/usr/bin/env bash
# Builds the auth proxy the chart puts in front of the webserver (dagsterWebserver.authProxy):
# oauth2-proxy OAUTH2_PROXY_VERSION from the Go module proxy (`go install`, its go.mod has no
# replace), built static and packed with the host's CA bundle (an issuer is normally HTTPS) by
# `docker import`, since no registry can be pulled from. `make auth-proxy-image` runs it.
# An image that already exists locally is left alone: bump OAUTH2_PROXY_IMAGE when this recipe
# or the version changes.
#
# Environment:
#   NICE   a prefix for the compiler, e.g. "nice -n 15" (default none)
set -o errexit -o nounset -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../../hack/lib.sh"

NICE="${NICE:-}"
MODULE=github.com/oauth2-proxy/oauth2-proxy/v7
# Debian's ca-certificates bundle, where Go's crypto/x509 looks for it.
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
# The chart runs it as the project's UID (securityContext.runAsUser), so no user is baked in.

build_rootfs() {
  local root="$1"
  command -v go >/dev/null || die "go is not on PATH: install Go 1.26 or newer (e.g. /usr/local/go/bin) and rerun"
  [[ -s "${CA_BUNDLE}" ]] || die "${CA_BUNDLE} is missing: apt-get install ca-certificates and rerun"
  mkdir -p "${root}/tmp" "${root}/etc/ssl/certs"
  cp "${CA_BUNDLE}" "${root}/etc/ssl/certs/"
  GOBIN="${root}" CGO_ENABLED=0 ${NICE} go install -trimpath \
    -ldflags "-s -w -X ${MODULE}/pkg/version.VERSION=${OAUTH2_PROXY_VERSION}" \
    "${MODULE}@${OAUTH2_PROXY_VERSION}" ||
    die "go install ${MODULE}@${OAUTH2_PROXY_VERSION} failed (it comes from the Go module proxy: is it reachable?)"
}

import_image() {
  local root="$1"
  tar -C "${root}" -c . | docker import \
    --change 'ENTRYPOINT ["/oauth2-proxy"]' \
    --change 'USER 65532:65532' \
    --change 'EXPOSE 4180' \
    --message "images/oauth2-proxy: oauth2-proxy ${OAUTH2_PROXY_VERSION}" \
    - "${OAUTH2_PROXY_IMAGE}" >/dev/null
}

main() {
  if docker image inspect "${OAUTH2_PROXY_IMAGE}" >/dev/null 2>&1; then
    log "cached: ${OAUTH2_PROXY_IMAGE}"
    return
  fi
  local root
  root="$(mktemp -d)"
  # shellcheck disable=SC2064 # the path is fixed now
  trap "rm -rf '${root}'" EXIT
  run_step "go install oauth2-proxy ${OAUTH2_PROXY_VERSION}" build_rootfs "${root}"
  run_step "docker import ${OAUTH2_PROXY_IMAGE}" import_image "${root}"
  local output
  output="$(docker run --rm --pull never --network none "${OAUTH2_PROXY_IMAGE}" --version 2>&1)" ||
    die "${OAUTH2_PROXY_IMAGE} failed its smoke test (oauth2-proxy --version): ${output}"
  grep -q "${OAUTH2_PROXY_VERSION}" <<<"${output}" ||
    die "${OAUTH2_PROXY_IMAGE} reports '${output}', not ${OAUTH2_PROXY_VERSION}"
}

main "$@"
