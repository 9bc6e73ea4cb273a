#!/usr/bin/env bash
# Builds a Debian base image from Debian's own packages (debootstrap + docker import), because no
# container registry can be reached to pull one. Usage:
#   images/base/build-base-image.sh [--hook SCRIPT] IMAGE_TAG [PACKAGE...]
# ca-certificates is always included. SCRIPT, if given, is run as `SCRIPT ROOT` on the finished
# tree before it is packed (an image's own shaping: users, removals).
# The root filesystem is cached as a tarball under CACHE_DIR/rootfs, keyed by the tag; an image
# that already exists locally is left alone. Bump the tag in versions.env when the recipe changes.
set -o errexit -o nounset -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../../hack/lib.sh"

# The host's mirrors unless DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR say otherwise.
debian_mirrors "${DEBIAN_RELEASE}"
ROOTFS_CACHE="${CACHE_DIR}/rootfs"
DEB_CACHE="${CACHE_DIR}/debootstrap-debs"

ensure_debootstrap() {
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap from the Debian archive"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null \
      || die "could not install debootstrap; install it (apt-get install debootstrap) and retry"
  fi
}

# debootstrap installs from the release alone; the point-release and security updates come here.
upgrade_rootfs() {
  local root="$1" rc=0
  cat >"${root}/etc/apt/sources.list" <<SOURCES
deb ${DEBIAN_MIRROR} ${DEBIAN_RELEASE} main
deb ${DEBIAN_MIRROR} ${DEBIAN_RELEASE}-updates main
deb ${DEBIAN_SECURITY_MIRROR} ${DEBIAN_RELEASE}-security main
SOURCES
  cp /etc/resolv.conf "${root}/etc/resolv.conf"
  # No service may start inside the build tree.
  printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"
  chmod 0755 "${root}/usr/sbin/policy-rc.d"
  mount -t proc proc "${root}/proc"
  {
    chroot "${root}" apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive chroot "${root}" apt-get dist-upgrade -y -qq \
        -o Dpkg::Options::=--force-confold
  } >>"${2}" 2>&1 || rc=$?
  umount "${root}/proc"
  rm -f "${root}/usr/sbin/policy-rc.d"
  return "${rc}"
}

# Trims what a container never needs; copyright files stay, as Debian's own images keep them.
trim_rootfs() {
  local root="$1"
  rm -rf "${root}"/var/lib/apt/lists/* "${root}"/var/cache/apt/*.bin "${root}"/var/cache/apt/archives/*.deb \
    "${root}"/var/log/*.log "${root}"/var/log/apt/* "${root}"/usr/share/man/* "${root}"/usr/share/info/* \
    "${root}"/usr/share/locale/* "${root}"/usr/share/doc-base/* "${root}"/tmp/* "${root}"/root/.cache
  find "${root}/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "${root}/usr/share/doc" -mindepth 1 -type d -empty -delete
  # Containers get their hostname, resolver and machine id from the runtime.
  : >"${root}/etc/machine-id"
  rm -f "${root}/etc/hostname" "${root}/etc/resolv.conf"
  # Later package installs (e.g. `apt-get install` in a derived image) keep it small as well.
  cat >"${root}/etc/dpkg/dpkg.cfg.d/container-excludes" <<'CFG'
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
CFG
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"${root}/etc/apt/apt.conf.d/90container-no-recommends"
}

# Drops a build tree, unmounting first whatever a failed debootstrap may have left mounted in it.
remove_rootfs() {
  local root="$1"
  umount "${root}/proc" "${root}/sys" 2>/dev/null || true
  rm -rf --one-file-system "${root}"
}

build_rootfs_tarball() {
  local tarball="$1" packages="$2" hook="$3"
  local root
  root="$(mktemp -d "${ROOTFS_CACHE}/build.XXXXXX")"
  mkdir -p "${DEB_CACHE}"
  log "debootstrap ${DEBIAN_RELEASE} (minbase) with: ${packages}"
  if ! nice -n 10 debootstrap --variant=minbase --include="${packages}" --cache-dir="${DEB_CACHE}" \
    "${DEBIAN_RELEASE}" "${root}" "${DEBIAN_MIRROR}" >"${tarball%.tar}.debootstrap.log" 2>&1; then
    remove_rootfs "${root}"
    die "debootstrap failed; see ${tarball%.tar}.debootstrap.log"
  fi
  if ! upgrade_rootfs "${root}" "${tarball%.tar}.debootstrap.log"; then
    remove_rootfs "${root}"
    die "updating the tree failed; see ${tarball%.tar}.debootstrap.log"
  fi
  trim_rootfs "${root}"
  if [[ -n "${hook}" ]]; then
    log "running ${hook} on the tree"
    "${hook}" "${root}"
  fi
  tar --numeric-owner --xattrs -C "${root}" -cf "${tarball}.tmp" .
  mv "${tarball}.tmp" "${tarball}"
  remove_rootfs "${root}"
}

main() {
  local hook=""
  if [[ "${1:-}" == --hook ]]; then
    hook="${2:?--hook needs a script}"
    shift 2
  fi
  local tag="${1:?usage: build-base-image.sh [--hook SCRIPT] IMAGE_TAG [PACKAGE...]}"
  shift
  local packages
  packages="ca-certificates${*:+,}$(IFS=,; echo "$*")"

  if docker image inspect "${tag}" >/dev/null 2>&1; then
    log "base image ${tag} exists; skipping"
    return 0
  fi
  mkdir -p "${ROOTFS_CACHE}"
  local tarball="${ROOTFS_CACHE}/${tag//[:\/]/_}.tar"
  if [[ ! -f "${tarball}" ]]; then
    ensure_debootstrap
    build_rootfs_tarball "${tarball}" "${packages}" "${hook}"
  fi
  log "importing ${tarball} as ${tag}"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["bash"]' \
    --message "debootstrap ${DEBIAN_RELEASE} minbase + ${packages}" \
    "${tarball}" "${tag}" >/dev/null
}

main "$@"
