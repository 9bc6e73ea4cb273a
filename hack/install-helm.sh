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

# Written after a build with the ldflags below, so an older build without them is replaced.
HELM_STAMP="${CACHE_BIN}/.helm-${HELM_VERSION}.built"

helm_is_current() {
  [[ -x "${CACHE_BIN}/helm" && -f "${HELM_STAMP}" ]] &&
    [[ "$("${CACHE_BIN}/helm" version --template '{{.Version}}' 2>/dev/null)" == "${HELM_VERSION}" ]]
}

# Kubernetes minor version helm assumes without a cluster (`helm template`, `helm lint`). Helm's
# own Makefile derives it from its k8s.io/client-go requirement (v0.34.x -> 1.34); without it
# the default is 1.20.
client_go_minor() {
  local gomod
  gomod="$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  [[ -f "${gomod}" ]] || die "could not download helm.sh/helm/v3@${HELM_VERSION}'s go.mod from the Go module proxy"
  awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]}' "${gomod}"
}

build_helm() {
  command -v go >/dev/null || die "go is not on PATH: install Go (e.g. apt-get install golang-go, or the toolchain in /usr/local/go/bin) and rerun"
  local minor
  minor="$(client_go_minor)"
  [[ -n "${minor}" ]] || die "no k8s.io/client-go requirement found in helm ${HELM_VERSION}'s go.mod"
  # The same ldflags as helm's Makefile: the pinned version, and the default Kubernetes version.
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor}"
  GOBIN="${CACHE_BIN}" CGO_ENABLED=0 go install -p "${HELM_BUILD_PARALLELISM}" -ldflags "${ldflags}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  touch "${HELM_STAMP}"
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
