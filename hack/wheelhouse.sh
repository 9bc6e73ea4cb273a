#!/usr/bin/env bash
# Downloads every wheel of the locked runtime dependencies (uv.lock, dev group excluded) plus uv
# itself, on the host, so that `docker build` needs no network: inside a container TLS to the
# registries fails here. Cached under CACHE_DIR/wheelhouse/<key> (key: the locked runtime
# requirements, uv version, target platform), then hard-linked into the build context at
# .wheelhouse/ (ignored by git).
set -o errexit -o nounset -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The images run Debian bookworm's CPython 3.11 on x86_64 with glibc 2.36: any manylinux wheel for
# glibc 2.36 or older fits (pip does not widen one --platform to the older ones by itself).
WHEEL_ARCH="${WHEEL_ARCH:-x86_64}"
WHEEL_GLIBC_MINOR="${WHEEL_GLIBC_MINOR:-36}"
WHEEL_PYTHON_VERSION="${WHEEL_PYTHON_VERSION:-3.11}"
WHEELHOUSE_CONTEXT_DIR="${REPO_ROOT}/.wheelhouse"

locked_requirements() {
  (cd "${REPO_ROOT}" && uv export --frozen --no-dev --no-emit-project --no-header --no-annotate \
    --format requirements.txt --quiet)
}

# Keyed by the runtime requirements, not by uv.lock: a change to the dev group alone (a linter)
# would otherwise download every wheel again (measured: 23 min here while the fast suite ran).
wheelhouse_key() {
  { locked_requirements; echo "${UV_VERSION} ${WHEEL_ARCH} ${WHEEL_GLIBC_MINOR} ${WHEEL_PYTHON_VERSION}"; } \
    | sha256sum | cut -c1-16
}

platform_args() {
  local minor
  for ((minor = WHEEL_GLIBC_MINOR; minor >= 5; minor--)); do
    printf -- '--platform\nmanylinux_2_%s_%s\n' "${minor}" "${WHEEL_ARCH}"
  done
  printf -- '--platform\n%s\n' "manylinux2014_${WHEEL_ARCH}" "manylinux2010_${WHEEL_ARCH}" "manylinux1_${WHEEL_ARCH}"
}

pip_download() {
  local platforms
  mapfile -t platforms < <(platform_args)
  nice -n 10 python3 -m pip download --quiet --disable-pip-version-check \
    --only-binary=:all: --no-deps "${platforms[@]}" --python-version "${WHEEL_PYTHON_VERSION}" \
    --implementation cp --abi "cp${WHEEL_PYTHON_VERSION/./}" \
    "$@"
}

download() {
  local dir="$1"
  local tmp="${dir}.tmp"
  rm -rf "${tmp}"
  mkdir -p "${tmp}"
  command -v uv >/dev/null || die "uv not found; run 'make setup' (it installs uv ${UV_VERSION})"
  python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip not found; install pip for python3"
  locked_requirements >"${tmp}/requirements.txt"
  # Wheels of an earlier wheelhouse are reused: pip skips a file already in the directory when its
  # hash matches the lock, so only what changed is downloaded.
  find "${CACHE_DIR}/wheelhouse" -mindepth 2 -maxdepth 2 -name '*.whl' -not -path "${tmp}/*" \
    -exec ln -f -t "${tmp}" {} + 2>/dev/null || true
  # --require-hashes: every wheel must match the hash recorded in uv.lock.
  pip_download --require-hashes -r "${tmp}/requirements.txt" -d "${tmp}" \
    || die "pip download of the locked wheels failed (is PyPI reachable?)"
  pip_download "uv==${UV_VERSION}" -d "${tmp}" || die "pip download of uv==${UV_VERSION} failed"
  mv "${tmp}" "${dir}"
}

main() {
  local dir
  dir="${CACHE_DIR}/wheelhouse/$(wheelhouse_key)"
  if [[ -f "${dir}/requirements.txt" ]]; then
    log "wheelhouse cached: ${dir}"
  else
    download "${dir}"
  fi
  log "wheelhouse: $(find "${dir}" -name '*.whl' | wc -l) wheels, $(du -sh "${dir}" | cut -f1)"
  rm -rf "${WHEELHOUSE_CONTEXT_DIR}"
  # Hard links cost no space; fall back to a copy across file systems.
  cp -al "${dir}" "${WHEELHOUSE_CONTEXT_DIR}" 2>/dev/null || cp -a "${dir}" "${WHEELHOUSE_CONTEXT_DIR}"
}

main "$@"
