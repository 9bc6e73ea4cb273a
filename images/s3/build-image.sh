#!/usr/bin/env bash
# Builds the S3-compatible server the kind suites install (S3_IMAGE in versions.env): main.go here,
# on gofakes3 from the Go module proxy (go.mod, go.sum), built static and packed alone with
# `docker import`, since no registry can be pulled from. `make k8s-test-images` runs it.
# An image that already exists locally is left alone: bump S3_IMAGE when this recipe or main.go
# changes.
#
# Environment:
#   NICE   a prefix for the compiler, e.g. "nice -n 15" (default none)
set -o errexit -o nounset -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../../hack/lib.sh"

SRC_DIR="${REPO_ROOT}/images/s3"
NICE="${NICE:-}"
# The image runs as this UID (the chart's pods use the project's 10001; this one is not the project).
SERVER_UID=65532

build_rootfs() {
  local root="$1"
  mkdir -p "${root}/tmp"
  command -v go >/dev/null || die "go is not on PATH: install Go 1.24 or newer (e.g. /usr/local/go/bin) and rerun"
  (cd "${SRC_DIR}" && CGO_ENABLED=0 ${NICE} go build -trimpath -ldflags "-s -w" -o "${root}/s3" .) ||
    die "go build of ${SRC_DIR} failed (its modules come from the Go module proxy: is it reachable?)"
}

import_image() {
  local root="$1"
  tar -C "${root}" -c . | docker import \
    --change 'ENTRYPOINT ["/s3"]' \
    --change "USER ${SERVER_UID}:${SERVER_UID}" \
    --change 'EXPOSE 9000' \
    --message "images/s3: gofakes3 in memory" \
    - "${S3_IMAGE}" >/dev/null
}

main() {
  if docker image inspect "${S3_IMAGE}" >/dev/null 2>&1; then
    log "cached: ${S3_IMAGE}"
    return
  fi
  local root
  root="$(mktemp -d)"
  # shellcheck disable=SC2064 # the path is fixed now
  trap "rm -rf '${root}'" EXIT
  run_step "go build images/s3" build_rootfs "${root}"
  run_step "docker import ${S3_IMAGE}" import_image "${root}"
  docker run --rm --pull never --network none "${S3_IMAGE}" -help >/dev/null 2>&1 ||
    die "${S3_IMAGE} failed its smoke test (/s3 -help)"
}

main "$@"
