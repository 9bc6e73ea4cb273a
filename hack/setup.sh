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
