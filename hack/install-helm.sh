#!/usr/bin/env bash
# Installs helm at HELM_VERSION (versions.env) into CACHE_BIN, built from the Go module proxy
# with `go install`: no prebuilt binary is downloaded. Idempotent: does nothing when the helm on
# CACHE_BIN already reports that version.
#
# Environment:
#   HELM_BUILD_PARALLELISM  go build -p (default 2: the machine's cores are shared)
set -o errexit -o nounset -o pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_BUILD_PARALLELISM="${HELM_BUILD_PARALLELISM:-2}"

helm_is_current() {
  [[ -x "${CACHE_BIN}/helm" ]] &&
    [[ "$("${CACHE_BIN}/helm" version --template '{{.Version}}' 2>/dev/null)" == "${HELM_VERSION}" ]]
}

build_helm() {
  command -v go >/dev/null || die "go is not on PATH: install Go (e.g. apt-get install golang-go, or the toolchain in /usr/local/go/bin) and rerun"
  # The version ldflag makes `helm version` report the pinned tag instead of a dev version.
  GOBIN="${CACHE_BIN}" CGO_ENABLED=0 go install -p "${HELM_BUILD_PARALLELISM}" \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
}

main() {
  [[ -n "${HELM_VERSION:-}" ]] || die "HELM_VERSION is not set in versions.env: add e.g. HELM_VERSION=v3.19.5"
  if helm_is_current; then
    log "helm ${HELM_VERSION} already in ${CACHE_BIN}"
    return
  fi
  run_step "helm ${HELM_VERSION} (go install)" build_helm
  helm_is_current || die "helm in ${CACHE_BIN} does not report ${HELM_VERSION} after go install"
}

main "$@"
