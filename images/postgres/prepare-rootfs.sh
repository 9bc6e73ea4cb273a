#!/usr/bin/env bash
# Shapes a Debian root filesystem that has postgresql-<major> installed into the embedded PostgreSQL's
# base. Run on the host against a debootstrap tree (build-base-image.sh --hook), or with ROOT=/
# inside the image when the packages were installed there (BUILD_MODE=online). Usage:
#   prepare-rootfs.sh ROOT
set -o errexit -o nounset -o pipefail

# Fixed IDs, so the chart's securityContext can name them (runAsUser/runAsGroup/fsGroup).
POSTGRES_UID=999
POSTGRES_GID=999

main() {
  local root="${1:?usage: prepare-rootfs.sh ROOT}"
  root="${root%/}"

  # JIT compilation (LLVM and its solver, about 160 MB) does nothing for Dagster's small queries.
  # Without the provider library PostgreSQL disables JIT by itself.
  rm -rf "${root}"/usr/lib/postgresql/*/lib/llvmjit* "${root}"/usr/lib/postgresql/*/lib/bitcode \
    "${root}"/usr/lib/*-linux-gnu/libLLVM-*.so* "${root}"/usr/lib/*-linux-gnu/libz3.so*
  # The entrypoint runs initdb into PGDATA itself; no packaged cluster or its config.
  rm -rf "${root}"/var/lib/postgresql/[0-9]* "${root}"/etc/postgresql/[0-9]*

  local old_uid old_gid
  old_uid="$(awk -F: '$1 == "postgres" {print $3}' "${root}/etc/passwd")"
  old_gid="$(awk -F: '$1 == "postgres" {print $3}' "${root}/etc/group")"
  [[ -n "${old_uid}" && -n "${old_gid}" ]] || { echo "no postgres user in ${root}/etc/passwd" >&2; exit 1; }
  if [[ "${old_uid}" != "${POSTGRES_UID}" || "${old_gid}" != "${POSTGRES_GID}" ]]; then
    groupmod --root "${root:-/}" --gid "${POSTGRES_GID}" postgres
    usermod --root "${root:-/}" --uid "${POSTGRES_UID}" --gid "${POSTGRES_GID}" postgres
    find "${root}/" -xdev -uid "${old_uid}" -exec chown -h "${POSTGRES_UID}" {} +
    find "${root}/" -xdev -gid "${old_gid}" -exec chgrp -h "${POSTGRES_GID}" {} +
  fi

  # The data volume's mount point and the socket directory belong to postgres.
  install -d -m 0700 -o "${POSTGRES_UID}" -g "${POSTGRES_GID}" "${root}/var/lib/postgresql/data"
  install -d -m 2775 -o "${POSTGRES_UID}" -g "${POSTGRES_GID}" "${root}/var/run/postgresql"
}

main "$@"
