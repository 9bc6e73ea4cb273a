#!/usr/bin/env bash
# Builds kind's node image with no container registry: a Debian root filesystem from
# the host's Debian mirror (debootstrap), the binaries of build-binaries.sh, and every image the cluster runs,
# preloaded into the node's containerd under the names kubeadm and kind's manifests ask for.
# Images are tagged by content and skipped when they exist. Prints the node image name last.
#   build-node-image.sh [STEP...]   (default: every step, ending with the node image)
set -o errexit -o nounset -o pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The host's mirror unless DEBIAN_MIRROR says otherwise.
debian_mirrors "${NODE_BASE_SUITE}"
# What kind's base image installs (images/base/Dockerfile of the kind module), with Debian's
# containerd, runc and CNI plugins in place of the ones kind builds from source.
NODE_PACKAGES=(
  systemd systemd-sysv dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod
  libseccomp2 pigz bash ca-certificates curl jq procps containerd runc containernetworking-plugins
)
# kube-proxy programs the node's packet filter with these.
KUBE_PROXY_PACKAGES=(iptables nftables conntrack ipset kmod)
LABEL_CHANGE='LABEL dagster-dbt-k8s.cache=true'

KIND_MODULE_DIR=""
K8S_BIN="${GO_BUILD_DIR}/kubernetes-${KUBERNETES_VERSION}"
CRICTL_BIN="${GO_BUILD_DIR}/crictl-${CRICTL_VERSION}/crictl"

kind_module_dir() {
  [[ -n "${KIND_MODULE_DIR}" ]] || KIND_MODULE_DIR="$(cd "${CACHE_DIR}" &&
    go mod download -json "sigs.k8s.io/kind@${KIND_VERSION}" | jq -r .Dir)"
  printf '%s' "${KIND_MODULE_DIR}"
}

# short_hash FILE_OR_STRING...: a stable 10-character tag suffix for build inputs.
short_hash() {
  local item
  for item in "$@"; do
    if [[ -f "${item}" ]]; then cat "${item}"; else printf '%s\n' "${item}"; fi
  done | sha256sum | cut -c1-10
}

image_exists() {
  docker image inspect "$1" >/dev/null 2>&1
}

# debootstrap_image TAG PACKAGE...: a minimal Debian root filesystem with PACKAGES, imported.
debootstrap_image() {
  local tag="$1"
  shift
  if image_exists "${tag}"; then
    log "cached: ${tag}"
    return
  fi
  command -v debootstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null ||
    die "debootstrap is missing and could not be installed (apt-get install debootstrap)"
  local rootfs="${IMAGE_BUILD_DIR}/rootfs-${tag##*:}"
  rm -rf "${rootfs}"
  mkdir -p "${rootfs}"
  log "debootstrap ${NODE_BASE_SUITE} with: $*"
  ${NICE} debootstrap --variant=minbase --include="$(IFS=,; echo "$*")" \
    "${NODE_BASE_SUITE}" "${rootfs}" "${DEBIAN_MIRROR}" >"${rootfs}.log" 2>&1 ||
    { tail -n 20 "${rootfs}.log" >&2; die "debootstrap failed; see ${rootfs}.log"; }
  chroot "${rootfs}" apt-get clean
  rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/usr/share/doc/* "${rootfs}"/usr/share/man/* \
    "${rootfs}"/var/cache/debconf/*-old "${rootfs}"/var/log/*.log
  tar -C "${rootfs}" --numeric-owner -c . |
    docker import --change "${LABEL_CHANGE}" --change 'CMD ["/bin/bash"]' - "${tag}" >/dev/null
  rm -rf "${rootfs}"
}

base_rootfs_image() {
  printf 'localhost/debian-rootfs:%s-node-%s' "${NODE_BASE_SUITE}" "$(short_hash "${NODE_PACKAGES[*]}")"
}

base_image() {
  printf 'localhost/kindest-base:%s-%s' "${KIND_VERSION}" \
    "$(short_hash "$(base_rootfs_image)" "${CLUSTER_DIR}/images/base/Dockerfile")"
}

kube_proxy_rootfs_image() {
  printf 'localhost/debian-rootfs:%s-iptables-%s' "${NODE_BASE_SUITE}" "$(short_hash "${KUBE_PROXY_PACKAGES[*]}")"
}

build_base_rootfs() {
  debootstrap_image "$(base_rootfs_image)" "${NODE_PACKAGES[@]}"
}

build_kube_proxy_rootfs() {
  debootstrap_image "$(kube_proxy_rootfs_image)" "${KUBE_PROXY_PACKAGES[@]}"
}

# kind's base image: our Debian root filesystem plus kind's entrypoint, units and containerd config.
build_base() {
  local tag
  tag="$(base_image)"
  if image_exists "${tag}"; then
    log "cached: ${tag}"
    return
  fi
  local context="${IMAGE_BUILD_DIR}/base-context"
  rm -rf "${context}"
  mkdir -p "${context}"
  cp "${CLUSTER_DIR}/images/base/Dockerfile" "${context}/"
  cp -r "$(kind_module_dir)/images/base/files" "${context}/files"
  chmod -R u+w "${context}"
  ${NICE} docker build --build-arg "ROOTFS_IMAGE=$(base_rootfs_image)" -t "${tag}" "${context}"
}

# static_image TAG ENTRYPOINT_JSON FILE:DEST...: an image FROM scratch holding only FILES.
static_image() {
  local tag="$1" entrypoint="$2"
  shift 2
  local context="${IMAGE_BUILD_DIR}/context-${tag//[\/:]/_}" spec
  rm -rf "${context}"
  mkdir -p "${context}/root"
  for spec in "$@"; do
    mkdir -p "${context}/root$(dirname "${spec#*:}")"
    cp -a "${spec%%:*}" "${context}/root${spec#*:}"
  done
  cat >"${context}/Dockerfile" <<DOCKERFILE
FROM scratch
COPY root/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
${LABEL_CHANGE}
ENTRYPOINT ${entrypoint}
DOCKERFILE
  docker build -q -t "${tag}" "${context}" >/dev/null
  rm -rf "${context}"
}

build_kubernetes_images() {
  local component
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    static_image "registry.k8s.io/${component}:${KUBERNETES_VERSION}" "[\"/usr/local/bin/${component}\"]" \
      "${K8S_BIN}/${component}:/usr/local/bin/${component}"
  done
  # kube-proxy execs iptables, ip6tables and conntrack: it needs them in its image.
  local context="${IMAGE_BUILD_DIR}/context-kube-proxy"
  rm -rf "${context}"
  mkdir -p "${context}"
  mkdir -p "${context}/bin" "${context}/lib"
  cp "${K8S_BIN}/kube-proxy" "${context}/lib/"
  cp "${CLUSTER_DIR}/images/kube-proxy/kube-proxy" "${context}/bin/"
  cat >"${context}/Dockerfile" <<DOCKERFILE
FROM $(kube_proxy_rootfs_image)
COPY lib/kube-proxy /usr/local/lib/kube-proxy/kube-proxy
COPY bin/kube-proxy /usr/local/bin/kube-proxy
${LABEL_CHANGE}
ENTRYPOINT ["/usr/local/bin/kube-proxy"]
DOCKERFILE
  docker build -q -t "registry.k8s.io/kube-proxy:${KUBERNETES_VERSION}" "${context}" >/dev/null
  rm -rf "${context}"
}

build_addon_images() {
  static_image "registry.k8s.io/etcd:${ETCD_IMAGE_TAG}" '["/usr/local/bin/etcd"]' \
    "${GO_BUILD_DIR}/etcd-${ETCD_VERSION}/etcd:/usr/local/bin/etcd"
  static_image "registry.k8s.io/coredns/coredns:${COREDNS_VERSION}" '["/coredns"]' \
    "${GO_BUILD_DIR}/coredns-${COREDNS_VERSION}/coredns:/coredns"
  static_image "registry.k8s.io/pause:${PAUSE_IMAGE_TAG}" '["/pause"]' \
    "${GO_BUILD_DIR}/pause/pause:/pause"
  static_image "${KINDNETD_IMAGE}" '["/bin/kindnetd"]' \
    "${GO_BUILD_DIR}/kindnetd/kindnetd:/bin/kindnetd"
  static_image "${LOCAL_PATH_PROVISIONER_IMAGE}" '["/usr/local/bin/local-path-provisioner"]' \
    "${GO_BUILD_DIR}/local-path-provisioner-${LOCAL_PATH_PROVISIONER_VERSION}/local-path-provisioner:/usr/local/bin/local-path-provisioner"
  # The helper pod runs the setup/teardown shell scripts of the storage ConfigMap.
  local busybox_dir="${IMAGE_BUILD_DIR}/busybox"
  rm -rf "${busybox_dir}"
  mkdir -p "${busybox_dir}/bin"
  cp /bin/busybox "${busybox_dir}/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [[ "${applet}" == busybox ]] || ln -s busybox "${busybox_dir}/bin/${applet}"
  done
  static_image "${LOCAL_PATH_HELPER_IMAGE}" '["/bin/sh"]' "${busybox_dir}/bin:/bin"
  rm -rf "${busybox_dir}"
}

# Every image a node preloads, in the names its pods ask for.
preloaded_images() {
  local component
  for component in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    echo "registry.k8s.io/${component}:${KUBERNETES_VERSION}"
  done
  echo "registry.k8s.io/etcd:${ETCD_IMAGE_TAG}"
  echo "registry.k8s.io/coredns/coredns:${COREDNS_VERSION}"
  echo "registry.k8s.io/pause:${PAUSE_IMAGE_TAG}"
  echo "${KINDNETD_IMAGE}"
  echo "${LOCAL_PATH_PROVISIONER_IMAGE}"
  echo "${LOCAL_PATH_HELPER_IMAGE}"
}

node_image() {
  local ids=() image
  for image in "$(base_image)" $(preloaded_images); do
    ids+=("$(docker image inspect -f '{{.Id}}' "${image}")")
  done
  printf 'localhost/kindest-node:%s-%s' "${KUBERNETES_VERSION}" \
    "$(short_hash "${ids[@]}" "${K8S_BIN}/kubelet" "${CRICTL_BIN}" "$(kind_module_dir)/pkg/build/nodeimage/const_cni.go")"
}

# kind_manifest CONST_NAME: a manifest kind keeps as a Go string constant, with its image names
# filled in (kind templates the rest, e.g. the pod subnet, at cluster creation).
kind_manifest() {
  local const="$1" nodeimage_dir
  nodeimage_dir="$(kind_module_dir)/pkg/build/nodeimage"
  awk -v start="const ${const} = \`" '
    index($0, start) == 1 { on = 1; next }
    on && $0 == "`" { exit }
    on { print }' "${nodeimage_dir}"/const_*.go |
    sed -e "s|\` + kindnetdImage + \`|${KINDNETD_IMAGE}|g" \
      -e "s|\` + storageProvisionerImage + \`|${LOCAL_PATH_PROVISIONER_IMAGE}|g" \
      -e "s|\` + storageHelperImage + \`|${LOCAL_PATH_HELPER_IMAGE}|g"
}

# Like `kind build node-image`, minus every pull: start the base image, add the Kubernetes
# binaries and kind's manifests, import the images into its containerd, commit.
build_node() {
  local tag
  tag="$(node_image)"
  if image_exists "${tag}"; then
    log "cached: ${tag}"
    echo "${tag}" >"${IMAGE_BUILD_DIR}/node-image"
    return
  fi
  local cid manifests="${IMAGE_BUILD_DIR}/manifests" binary image
  rm -rf "${manifests}"
  mkdir -p "${manifests}"
  kind_manifest defaultCNIManifest >"${manifests}/default-cni.yaml"
  kind_manifest defaultStorageManifest >"${manifests}/default-storage.yaml"
  if grep -q '` +' "${manifests}"/*.yaml; then
    die "kind ${KIND_VERSION} names an image this script does not know; see ${manifests}"
  fi
  echo "${KUBERNETES_VERSION}" >"${manifests}/version"

  cid="$(docker run -d --privileged --name "node-image-build-$$" --entrypoint sleep "$(base_image)" infinity)"
  # shellcheck disable=SC2064
  trap "docker rm -f ${cid} >/dev/null 2>&1 || true" EXIT
  for binary in kubeadm kubelet kubectl; do
    docker cp "${K8S_BIN}/${binary}" "${cid}:/usr/bin/${binary}"
  done
  docker cp "${CRICTL_BIN}" "${cid}:/usr/local/bin/crictl"
  docker exec "${cid}" mkdir -p /kind/manifests
  docker cp "${manifests}/default-cni.yaml" "${cid}:/kind/manifests/default-cni.yaml"
  docker cp "${manifests}/default-storage.yaml" "${cid}:/kind/manifests/default-storage.yaml"
  docker cp "${manifests}/version" "${cid}:/kind/version"
  docker exec "${cid}" sed -i \
    "s|sandbox_image = .*|sandbox_image = \"registry.k8s.io/pause:${PAUSE_IMAGE_TAG}\"|" \
    /etc/containerd/config.toml

  docker exec "${cid}" bash -c 'nohup containerd >/var/log/containerd-build.log 2>&1 &'
  wait_for "containerd in the node image build container" 30 docker exec "${cid}" ctr version
  for image in $(preloaded_images); do
    log "preloading ${image}"
    docker save "${image}" | docker exec -i "${cid}" ctr --namespace=k8s.io images import \
      --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
  done
  docker exec "${cid}" ctr --namespace=k8s.io images list -q | sort >"${manifests}/preloaded.txt"
  for image in $(preloaded_images); do
    grep -qx "${image}" "${manifests}/preloaded.txt" || die "${image} is missing from the node's containerd"
  done
  docker exec "${cid}" pkill containerd
  # sleep, the container's first process, reaps nothing: a stopped containerd stays a zombie.
  wait_for "containerd to stop in the build container" 30 \
    bash -c "! docker exec ${cid} sh -c 'ps -C containerd -o stat= | grep -qv Z'"
  docker exec "${cid}" rm -f /var/log/containerd-build.log
  docker commit \
    --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    --change "${LABEL_CHANGE}" "${cid}" "${tag}" >/dev/null
  docker rm -f "${cid}" >/dev/null
  trap - EXIT
  echo "${tag}" >"${IMAGE_BUILD_DIR}/node-image"
  log "built ${tag}"
}

main() {
  take_build_lock
  mkdir -p "${IMAGE_BUILD_DIR}"
  local steps=("$@")
  ((${#steps[@]})) || steps=(base-rootfs kube-proxy-rootfs base kubernetes-images addon-images node)
  local step
  for step in "${steps[@]}"; do
    run_step "image ${step}" "build_${step//-/_}"
  done
}

main "$@"
