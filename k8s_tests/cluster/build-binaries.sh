#!/usr/bin/env bash
# Builds, from the Go module proxy only, every binary a kind cluster needs, into
# ${CACHE_DIR}/go-build/<name>-<version>/. A step whose output exists is skipped.
#   build-binaries.sh [STEP...]   (default: all steps)
set -o errexit -o nounset -o pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# wrapper_module DIR MODULE@VERSION: a throwaway module in DIR that requires MODULE and points
# every replace of MODULE's go.mod that names a local path at the published module instead.
wrapper_module() {
  local dir="$1" module="${2%@*}" version="${2#*@}" staging_version="$3"
  local gomod
  mkdir -p "${dir}"
  gomod="$(cd "${dir}" && go mod download -json "${module}@${version}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  {
    printf 'module local/wrapper\n\ngo 1.24.0\n\nrequire %s %s\n\n' "${module}" "${version}"
    awk -v v="${staging_version}" '$2 == "=>" && $3 ~ /^\.\.?\// && $3 !~ /FORBIDDEN/ {
      printf "replace %s => %s %s\n", $1, $1, v }' "${gomod}"
  } >"${dir}/go.mod"
}

# kubernetes_ldflags: the version stamps `kubectl version` and kubeadm read.
kubernetes_ldflags() {
  local v="${KUBERNETES_VERSION}" major minor pkg flags="-s -w"
  major="$(cut -d. -f1 <<<"${v#v}")"
  minor="$(cut -d. -f2 <<<"${v}")"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${v} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
    flags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "${flags}"
}

# build_kubernetes_commands OUT CMD...: builds Kubernetes commands into OUT through a wrapper
# module (k8s.io/kubernetes points its staging modules at local paths).
build_kubernetes_commands() {
  local out="$1" cmd pkgs=()
  shift
  for cmd in "$@"; do
    pkgs+=("k8s.io/kubernetes/cmd/${cmd}")
  done
  local src="${GO_BUILD_DIR}/src/kubernetes-${KUBERNETES_VERSION}"
  wrapper_module "${src}" "k8s.io/kubernetes@${KUBERNETES_VERSION}" "v0${KUBERNETES_VERSION#v1}"
  (
    cd "${src}"
    mkdir -p "${out}.tmp"
    CGO_ENABLED=0 ${NICE} go build -mod=mod -trimpath -ldflags "$(kubernetes_ldflags)" -o "${out}.tmp/" "${pkgs[@]}"
  )
  mv "${out}.tmp" "${out}"
}

build_kubernetes() {
  local out="${GO_BUILD_DIR}/kubernetes-${KUBERNETES_VERSION}"
  [[ -x "${out}/kubelet" ]] && { log "cached: ${out}"; return; }
  build_kubernetes_commands "${out}" kubeadm kubelet kubectl kube-apiserver kube-controller-manager \
    kube-scheduler kube-proxy
}

# go_install NAME VERSION PACKAGE@VERSION [LDFLAGS]: a static `go install` into its own
# versioned directory, for modules whose go.mod has no replace directives.
go_install() {
  local name="$1" version="$2" package="$3" ldflags="${4:--s -w}"
  local out="${GO_BUILD_DIR}/${name}-${version}"
  [[ -x "${out}/${name}" ]] && { log "cached: ${out}/${name}"; return; }
  mkdir -p "${out}.tmp"
  GOBIN="${out}.tmp" CGO_ENABLED=0 ${NICE} go install -trimpath -ldflags "${ldflags}" "${package}"
  mv "${out}.tmp" "${out}"
}

# link_tool NAME VERSION: puts a host tool on PATH (CACHE_BIN) at the pinned version.
link_tool() {
  ln -sfn "${GO_BUILD_DIR}/$1-$2/$1" "${CACHE_BIN}/$1"
}

build_kind() {
  go_install kind "${KIND_VERSION}" "sigs.k8s.io/kind@${KIND_VERSION}"
  link_tool kind "${KIND_VERSION}"
}

# kubectl comes with the Kubernetes binaries; alone (upstream node image) it builds by itself.
build_kubectl() {
  local all="${GO_BUILD_DIR}/kubernetes-${KUBERNETES_VERSION}" alone="${GO_BUILD_DIR}/kubectl-${KUBERNETES_VERSION}"
  if [[ -x "${all}/kubectl" ]]; then
    ln -sfn "${all}/kubectl" "${CACHE_BIN}/kubectl"
    return
  fi
  [[ -x "${alone}/kubectl" ]] || build_kubernetes_commands "${alone}" kubectl
  ln -sfn "${alone}/kubectl" "${CACHE_BIN}/kubectl"
}

build_crictl() {
  go_install crictl "${CRICTL_VERSION}" "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}" \
    "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION}"
}

# Our own main (images/coredns) over the pinned CoreDNS module, linking only the plugins a kind
# cluster uses.
build_coredns() {
  local main="${CLUSTER_DIR}/images/coredns/main.go"
  local out="${GO_BUILD_DIR}/coredns-${COREDNS_VERSION}" src="${GO_BUILD_DIR}/src/coredns-${COREDNS_VERSION}"
  local stamp
  stamp="$(sha256sum <"${main}" | cut -c1-10)"
  [[ -x "${out}/coredns" && "$(cat "${out}/stamp" 2>/dev/null)" == "${stamp}" ]] &&
    { log "cached: ${out}/coredns"; return; }
  rm -rf "${src}" "${out}" "${out}.tmp"
  mkdir -p "${src}" "${out}.tmp"
  cp "${main}" "${src}/main.go"
  printf 'module local/coredns\n\ngo 1.24.0\n\nrequire github.com/coredns/coredns %s\n' "${COREDNS_VERSION}" >"${src}/go.mod"
  (
    cd "${src}"
    CGO_ENABLED=0 ${NICE} go build -mod=mod -trimpath -o "${out}.tmp/coredns" \
      -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VERSION}" .
  )
  echo "${stamp}" >"${out}.tmp/stamp"
  mv "${out}.tmp" "${out}"
}

build_local_path_provisioner() {
  go_install local-path-provisioner "${LOCAL_PATH_PROVISIONER_VERSION}" \
    "github.com/rancher/local-path-provisioner@${LOCAL_PATH_PROVISIONER_VERSION}"
}

# etcd's server module replaces its sibling modules with local paths, like Kubernetes.
build_etcd() {
  local out="${GO_BUILD_DIR}/etcd-${ETCD_VERSION}"
  [[ -x "${out}/etcd" ]] && { log "cached: ${out}/etcd"; return; }
  local src="${GO_BUILD_DIR}/src/etcd-${ETCD_VERSION}"
  wrapper_module "${src}" "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" "${ETCD_VERSION}"
  (
    cd "${src}"
    mkdir -p "${out}.tmp"
    CGO_ENABLED=0 ${NICE} go build -mod=mod -trimpath -o "${out}.tmp/etcd" \
      -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" go.etcd.io/etcd/server/v3
  )
  mv "${out}.tmp" "${out}"
}

# Our own stand-in (images/kindnetd): kind's kindnetd module is not served by the proxy.
build_kindnetd() {
  local src="${CLUSTER_DIR}/images/kindnetd" out="${GO_BUILD_DIR}/kindnetd"
  local stamp
  stamp="$(cat "${src}"/*.go "${src}/go.mod" | sha256sum | cut -c1-10)"
  [[ -x "${out}/kindnetd" && "$(cat "${out}/stamp" 2>/dev/null)" == "${stamp}" ]] &&
    { log "cached: ${out}/kindnetd"; return; }
  mkdir -p "${out}"
  (cd "${src}" && CGO_ENABLED=0 ${NICE} go build -trimpath -ldflags "-s -w" -o "${out}/kindnetd" .)
  echo "${stamp}" >"${out}/stamp"
}

build_pause() {
  local src="${CLUSTER_DIR}/images/pause/pause.c" out="${GO_BUILD_DIR}/pause"
  local stamp
  stamp="$(sha256sum <"${src}" | cut -c1-10)"
  [[ -x "${out}/pause" && "$(cat "${out}/stamp" 2>/dev/null)" == "${stamp}" ]] &&
    { log "cached: ${out}/pause"; return; }
  command -v gcc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y gcc libc6-dev >/dev/null
  mkdir -p "${out}"
  gcc -Os -static -Wall -o "${out}/pause" "${src}"
  strip "${out}/pause"
  echo "${stamp}" >"${out}/stamp"
}

# helm is installed by hack/install-helm.sh.
ALL_STEPS=(kind kubernetes kubectl pause kindnetd crictl etcd coredns local-path-provisioner)

main() {
  take_build_lock
  command -v go >/dev/null || die "go is not on PATH: install Go 1.24 or newer (e.g. /usr/local/go/bin) and rerun"
  local steps=("$@")
  ((${#steps[@]})) || steps=("${ALL_STEPS[@]}")
  local step
  for step in "${steps[@]}"; do
    run_step "build ${step}" "build_${step//-/_}"
  done
}

main "$@"
