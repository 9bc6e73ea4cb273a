#!/usr/bin/env bash
# Makes sure a Docker engine answers. When none does, installs Debian's docker.io, starts dockerd in
# the background (there is no systemd here) and waits for it. Idempotent: does nothing when
# `docker info` already answers.
#
# Where the capability bounding set lacks CAP_SYS_RESOURCE (some VMs), `docker run --privileged`
# fails with "unable to apply caps: operation not permitted". Only there, a small wrapper around
# runc becomes dockerd's default runtime: it drops CAP_SYS_RESOURCE from the container's config
# before runc sees it. A normal machine is left alone.
#
# Environment:
#   DOCKER_WAIT_SECONDS  how long to wait for dockerd to answer (default 60)
#   DOCKER_VERIFY        1 to check `docker run --privileged` with a locally imported image (default 1)
set -o errexit -o nounset -o pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOCKER_WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"
DOCKER_VERIFY="${DOCKER_VERIFY:-1}"
DOCKERD_LOG="${CACHE_DIR}/dockerd.log"
RUNC_WRAPPER=/usr/local/sbin/runc-without-sys-resource
DAEMON_JSON=/etc/docker/daemon.json
PROBE_IMAGE=localhost/privileged-probe:1

# CAP_SYS_RESOURCE is capability 24.
has_cap_sys_resource() {
  local bnd
  bnd="$(awk '/^CapBnd:/ {print $2}' /proc/self/status)"
  (((16#${bnd} >> 24) & 1))
}

install_packages() {
  command -v dockerd >/dev/null && command -v jq >/dev/null && command -v busybox >/dev/null && return
  log "installing docker.io, jq and busybox-static from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    docker.io jq busybox-static iptables ca-certificates >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y \
      --no-install-recommends docker.io jq busybox-static iptables ca-certificates >/dev/null; }
}

# The wrapper edits the OCI spec in place: config.json of the bundle on create/run, the
# --process file on exec. Everything else goes to runc untouched.
install_runc_wrapper() {
  local real_runc
  real_runc="$(command -v runc)" || die "runc not found; is docker.io installed?"
  cat >"${RUNC_WRAPPER}" <<WRAPPER
#!/bin/sh
# Installed by hack/docker-engine.sh: this host's capability bounding set lacks
# CAP_SYS_RESOURCE, so runc must not be asked to grant it.
real_runc=${real_runc}
strip() { # FILE JQ_PATH
  tmp="\$1.nosysres.\$\$"
  jq "if \$2 then \$2 |= map_values(if type == \"array\" then map(select(. != \"CAP_SYS_RESOURCE\")) else . end) else . end" "\$1" >"\$tmp" && mv "\$tmp" "\$1"
}
cmd="" bundle="." process=""
prev=""
for arg in "\$@"; do
  case "\$prev" in
    --bundle|-b) bundle="\$arg" ;;
    --process|-p) process="\$arg" ;;
  esac
  case "\$arg" in
    --bundle=*) bundle="\${arg#--bundle=}" ;;
    --process=*) process="\${arg#--process=}" ;;
    create|run|exec) [ -z "\$cmd" ] && cmd="\$arg" ;;
  esac
  prev="\$arg"
done
case "\$cmd" in
  create|run) [ -f "\$bundle/config.json" ] && strip "\$bundle/config.json" .process.capabilities ;;
  exec) [ -n "\$process" ] && [ -f "\$process" ] && strip "\$process" .capabilities ;;
esac
exec "\$real_runc" "\$@"
WRAPPER
  chmod 0755 "${RUNC_WRAPPER}"
  mkdir -p "$(dirname "${DAEMON_JSON}")"
  local current='{}'
  [[ -s "${DAEMON_JSON}" ]] && current="$(cat "${DAEMON_JSON}")"
  jq --arg path "${RUNC_WRAPPER}" \
    '.runtimes["runc-without-sys-resource"] = {path: $path} | ."default-runtime" = "runc-without-sys-resource"' \
    <<<"${current}" >"${DAEMON_JSON}.tmp"
  mv "${DAEMON_JSON}.tmp" "${DAEMON_JSON}"
  log "CAP_SYS_RESOURCE is missing from the bounding set: default runtime is ${RUNC_WRAPPER}"
}

start_dockerd() {
  log "starting dockerd (log: ${DOCKERD_LOG})"
  # dockerd outlives this script: it must not inherit a caller's lock (fd 9, k8s_tests/cluster).
  nohup setsid dockerd >>"${DOCKERD_LOG}" 2>&1 </dev/null 9>&- &
  if ! wait_for_docker; then
    tail -n 30 "${DOCKERD_LOG}" >&2 || true
    die "dockerd did not answer within ${DOCKER_WAIT_SECONDS}s; see ${DOCKERD_LOG}"
  fi
}

wait_for_docker() {
  local deadline=$((SECONDS + DOCKER_WAIT_SECONDS))
  until docker info >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# A privileged container from an image imported from a local root filesystem: no pull.
verify_privileged_run() {
  if ! docker image inspect "${PROBE_IMAGE}" >/dev/null 2>&1; then
    local rootfs
    rootfs="$(mktemp -d)"
    mkdir -p "${rootfs}/bin"
    cp "$(command -v busybox)" "${rootfs}/bin/busybox"
    ln -s busybox "${rootfs}/bin/sh"
    tar -C "${rootfs}" -c . | docker import - "${PROBE_IMAGE}" >/dev/null
    rm -rf "${rootfs}"
  fi
  docker run --rm --privileged "${PROBE_IMAGE}" /bin/sh -c 'exit 0' ||
    die "docker run --privileged failed; see ${DOCKERD_LOG}"
  log "docker run --privileged works"
}

main() {
  if docker info >/dev/null 2>&1; then
    log "Docker engine already answers"
  else
    [[ ${EUID} -eq 0 ]] || die "no Docker engine answers and installing one needs root"
    install_packages
    if ! has_cap_sys_resource; then
      install_runc_wrapper
    fi
    start_dockerd
  fi
  if [[ "${DOCKER_VERIFY}" == 1 ]]; then
    verify_privileged_run
  fi
}

main "$@"
