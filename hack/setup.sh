#!/usr/bin/env bash
# Installs what the fast suite and local runs need: uv (pinned), the locked Python
# environment, and a PostgreSQL server from Debian's packages. Idempotent.
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_uv() {
  if command -v uv >/dev/null && [[ "$(uv --version)" == "uv ${UV_VERSION}"* ]]; then
    return
  fi
  log "installing uv ${UV_VERSION} from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
}

ensure_python_env() {
  (cd "${REPO_ROOT}" && uv sync --frozen --quiet)
  compile_bytecode
}

# Every test process (daemon, run workers, step processes, dbt) imports dagster and dbt. Where
# PYTHONDONTWRITEBYTECODE is set (it is on these machines) nothing caches the compiled modules, and
# each process compiles them again: measured here, `dbt parse` 7.4 s -> 4.8 s and `dbt --version`
# 9.5 s -> 6.1 s once they are compiled. Python reads .pyc files whatever that variable says.
compile_bytecode() {
  local stamp
  stamp="${REPO_ROOT}/.venv/.bytecode-$(sha256sum "${REPO_ROOT}/uv.lock" | cut -c1-16)"
  [[ -f "${stamp}" ]] && return
  log "compiling the environment's bytecode"
  "${REPO_ROOT}/.venv/bin/python" -m compileall -q -j 0 "${REPO_ROOT}"/.venv/lib/python*/site-packages >/dev/null \
    || die "compiling the bytecode of .venv failed"
  rm -f "${REPO_ROOT}"/.venv/.bytecode-*
  touch "${stamp}"
}

# The tests start throwaway PostgreSQL servers with initdb/pg_ctl from this package.
ensure_postgresql_server() {
  if [[ -x "/usr/lib/postgresql/${POSTGRES_MAJOR}/bin/pg_ctl" ]]; then
    return
  fi
  log "installing postgresql-${POSTGRES_MAJOR} from Debian's archive"
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  ${sudo} apt-get update -qq
  DEBIAN_FRONTEND=noninteractive ${sudo} apt-get install -y -qq "postgresql-${POSTGRES_MAJOR}" >/dev/null
}

main() {
  run_step "uv ${UV_VERSION}" ensure_uv
  run_step "python environment (uv.lock)" ensure_python_env
  run_step "postgresql-${POSTGRES_MAJOR} server" ensure_postgresql_server
}

main "$@"
