#!/usr/bin/env bash
# Entrypoint of the embedded PostgreSQL (chart's default database). Runs as the postgres user
# (UID 999) and writes only to PGDATA and the socket directory, so it fits the Pod Security
# Standard "restricted" and a read-only root filesystem (mount an emptyDir on the socket directory).
#
# Environment:
#   POSTGRES_PASSWORD    required: password of POSTGRES_USER (scram-sha-256), used at initdb
#   POSTGRES_USER        the superuser initdb creates (default dagster)
#   POSTGRES_DATABASES   space-separated databases created when missing, at every start
#                        (default "dagster warehouse")
#   PGDATA               the cluster directory (default /var/lib/postgresql/data/pgdata)
#   POSTGRES_SOCKET_DIR  the Unix socket directory (default /var/run/postgresql)
# Arguments are passed to postgres, e.g. `-c max_connections=200`.
set -o errexit -o nounset -o pipefail

# The image puts the server's bin directory (/usr/lib/postgresql/<major>/bin) first on PATH.
PG_BIN="$(dirname "$(command -v postgres)")"
export PGDATA="${PGDATA:-/var/lib/postgresql/data/pgdata}"
POSTGRES_USER="${POSTGRES_USER:-dagster}"
POSTGRES_DATABASES="${POSTGRES_DATABASES:-dagster warehouse}"
POSTGRES_SOCKET_DIR="${POSTGRES_SOCKET_DIR:-/var/run/postgresql}"

log() {
  printf '%s [entrypoint] %s\n' "$(date -u '+%F %T UTC')" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

check_environment() {
  [[ -n "${POSTGRES_PASSWORD:-}" ]] \
    || die "POSTGRES_PASSWORD is not set: set it (from a Secret) to the password of '${POSTGRES_USER}'"
  [[ "$(id -u)" != 0 ]] || die "running as root; run as the postgres user (UID 999)"
  mkdir -p "${PGDATA}" || die "cannot create PGDATA ${PGDATA}: its parent must be writable by UID $(id -u)"
  chmod 0700 "${PGDATA}" || die "PGDATA ${PGDATA} is not owned by UID $(id -u); fix the volume's ownership (fsGroup)"
}

init_cluster() {
  log "initializing a new cluster in ${PGDATA} (superuser ${POSTGRES_USER})"
  # The password goes through a pipe, never a file or the command line.
  "${PG_BIN}/initdb" --username="${POSTGRES_USER}" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD}") \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    --data-checksums >/dev/null
  cat >"${PGDATA}/pg_hba.conf" <<'HBA'
# Written by the image's entrypoint: a password (scram-sha-256) for every connection.
local all all                scram-sha-256
host  all all 0.0.0.0/0      scram-sha-256
host  all all ::/0           scram-sha-256
HBA
}

# Starts a server reachable only through the socket, creates the missing databases, stops it.
ensure_databases() {
  "${PG_BIN}/pg_ctl" --wait --timeout=60 --silent \
    --options="-c listen_addresses='' -c unix_socket_directories='${POSTGRES_SOCKET_DIR}'" start \
    || die "the temporary server did not start; see the log above"
  local db
  for db in ${POSTGRES_DATABASES}; do
    PGPASSWORD="${POSTGRES_PASSWORD}" "${PG_BIN}/psql" --no-psqlrc --quiet --set ON_ERROR_STOP=1 \
      --host="${POSTGRES_SOCKET_DIR}" --username="${POSTGRES_USER}" --dbname=postgres \
      --set db="${db}" <<'SQL' || die "could not create database '${db}'"
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
  done
  log "databases present: ${POSTGRES_DATABASES}"
  "${PG_BIN}/pg_ctl" --wait --timeout=60 --silent --mode=fast stop
}

main() {
  check_environment
  if [[ ! -s "${PGDATA}/PG_VERSION" ]]; then
    init_cluster
  fi
  ensure_databases
  # PID 1 is dumb-init (see the Dockerfile): it turns SIGTERM into SIGINT, PostgreSQL's fast shutdown.
  exec "${PG_BIN}/postgres" -c listen_addresses='*' -c unix_socket_directories="${POSTGRES_SOCKET_DIR}" "$@"
}

main "$@"
