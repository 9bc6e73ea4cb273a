#!/usr/bin/env bash
# Entrypoint of the embedded PostgreSQL (chart's default database). Runs as the postgres user
# (UID 999) and writes only to PGDATA, the socket directory and /tmp, so it fits the Pod Security
# Standard "restricted" and a read-only root filesystem (mount emptyDirs there).
#
# At every start, before the server listens on TCP, it applies the roles, passwords and databases
# below (creating what is missing), so a password changed in the Secret takes effect at the next
# start. It reaches the server through a private socket that only UID 999 can open (trust there),
# so it needs no password that may just have changed.
#
# Environment:
#   POSTGRES_SUPERUSER_PASSWORD  required: password of POSTGRES_SUPERUSER (scram-sha-256)
#   POSTGRES_SUPERUSER   the superuser initdb creates (default postgres): administration only
#   POSTGRES_ROLES       space-separated ROLE:ENV_VAR pairs: login roles, never superusers, each
#                        with the password held by the env var ENV_VAR (e.g. "dagster:DAGSTER_PASSWORD")
#   POSTGRES_DATABASES   space-separated DATABASE[:OWNER] (owner default POSTGRES_SUPERUSER); only
#                        the owner and superusers may connect to a database with an owner
#   PGDATA               the cluster directory (default /var/lib/postgresql/data/pgdata)
#   POSTGRES_SOCKET_DIR  the Unix socket directory (default /var/run/postgresql)
# Arguments are passed to postgres, e.g. `-c max_connections=200`.
set -o errexit -o nounset -o pipefail
shopt -s extglob

# The image puts the server's bin directory (/usr/lib/postgresql/<major>/bin) first on PATH.
PG_BIN="$(dirname "$(command -v postgres)")"
export PGDATA="${PGDATA:-/var/lib/postgresql/data/pgdata}"
POSTGRES_SUPERUSER="${POSTGRES_SUPERUSER:-postgres}"
POSTGRES_ROLES="${POSTGRES_ROLES:-}"
POSTGRES_DATABASES="${POSTGRES_DATABASES:-}"
POSTGRES_SOCKET_DIR="${POSTGRES_SOCKET_DIR:-/var/run/postgresql}"

log() {
  printf '%s [entrypoint] %s\n' "$(date -u '+%F %T UTC')" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

check_environment() {
  [[ -n "${POSTGRES_SUPERUSER_PASSWORD:-}" ]] \
    || die "POSTGRES_SUPERUSER_PASSWORD is not set: set it (from a Secret) to the password of '${POSTGRES_SUPERUSER}'"
  local pair role var
  for pair in ${POSTGRES_ROLES}; do
    role="${pair%%:*}"
    var="${pair#*:}"
    [[ "${pair}" == *:* && -n "${role}" && "${var}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] \
      || die "POSTGRES_ROLES: '${pair}' is not ROLE:ENV_VAR"
    [[ "${role}" != "${POSTGRES_SUPERUSER}" ]] \
      || die "POSTGRES_ROLES: '${role}' is POSTGRES_SUPERUSER; the roles are never superusers: name another role"
    [[ -n "${!var:-}" ]] || die "${var} is not set: set it (from a Secret) to the password of role '${role}'"
  done
  [[ "$(id -u)" != 0 ]] || die "running as root; run as the postgres user (UID 999)"
  mkdir -p "${PGDATA}" || die "cannot create PGDATA ${PGDATA}: its parent must be writable by UID $(id -u)"
  chmod 0700 "${PGDATA}" || die "PGDATA ${PGDATA} is not owned by UID $(id -u); fix the volume's ownership (fsGroup)"
}

init_cluster() {
  log "initializing a new cluster in ${PGDATA} (superuser ${POSTGRES_SUPERUSER})"
  # The password goes through a pipe, never a file or the command line.
  "${PG_BIN}/initdb" --username="${POSTGRES_SUPERUSER}" \
    --pwfile=<(printf '%s\n' "${POSTGRES_SUPERUSER_PASSWORD}") \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    --data-checksums >/dev/null
  cat >"${PGDATA}/pg_hba.conf" <<'HBA'
# Written by the image's entrypoint: a password (scram-sha-256) for every connection.
local all all                scram-sha-256
host  all all 0.0.0.0/0      scram-sha-256
host  all all ::/0           scram-sha-256
HBA
}

# psql as the superuser through the private socket; SQL on stdin (passwords never on a command line).
admin_psql() {
  "${PG_BIN}/psql" --no-psqlrc --quiet --set ON_ERROR_STOP=1 --host="${SETUP_SOCKET_DIR}" \
    --username="${POSTGRES_SUPERUSER}" --dbname=postgres "$@"
}

apply_roles() {
  # Statements carry passwords: none is logged, not even when it fails.
  admin_psql <<'SQL' || die "could not set the password of '${POSTGRES_SUPERUSER}'"
\getenv pw POSTGRES_SUPERUSER_PASSWORD
SELECT format('ALTER ROLE %I WITH PASSWORD %L', current_user, :'pw')\gexec
SQL
  local pair role var
  for pair in ${POSTGRES_ROLES}; do
    role="${pair%%:*}"
    var="${pair#*:}"
    admin_psql --set role="${role}" --set var="${var}" <<'SQL' || die "could not create or update role '${role}'"
\getenv pw :var
SELECT format('CREATE ROLE %I LOGIN', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')\gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', :'role', :'pw')\gexec
SQL
  done
  log "passwords applied: ${POSTGRES_SUPERUSER} (superuser) ${POSTGRES_ROLES//:+([A-Za-z0-9_])/}"
}

apply_databases() {
  local entry db owner
  for entry in ${POSTGRES_DATABASES}; do
    db="${entry%%:*}"
    owner="${POSTGRES_SUPERUSER}"
    [[ "${entry}" != *:* ]] || owner="${entry#*:}"
    admin_psql --set db="${db}" --set owner="${owner}" <<'SQL' || die "could not create database '${db}' owned by '${owner}'"
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner')\gexec
-- Only its owner (and superusers) may connect: one role cannot read the other's database.
SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', :'db')
WHERE :'owner' <> current_user\gexec
SQL
  done
  log "databases present: ${POSTGRES_DATABASES}"
}

# A server reachable only through a socket in a private directory (mode 0700: UID 999 alone can
# open it), where the entrypoint's own connections are trusted, then stopped.
apply_setup() {
  SETUP_SOCKET_DIR="$(mktemp -d /tmp/postgres-setup.XXXXXX)"
  chmod 0700 "${SETUP_SOCKET_DIR}"
  printf 'local all %s trust\n' "${POSTGRES_SUPERUSER}" >"${SETUP_SOCKET_DIR}/pg_hba.conf"
  "${PG_BIN}/pg_ctl" --wait --timeout=60 --silent \
    --options="-c listen_addresses='' -c unix_socket_directories='${SETUP_SOCKET_DIR}' -c hba_file='${SETUP_SOCKET_DIR}/pg_hba.conf' -c log_statement=none -c log_min_error_statement=panic" \
    start || die "the temporary server did not start; see the log above"
  if ! admin_psql --command='SELECT' >/dev/null; then
    "${PG_BIN}/pg_ctl" --wait --timeout=60 --silent --mode=fast stop
    die "cannot log in as '${POSTGRES_SUPERUSER}' (POSTGRES_SUPERUSER): the cluster in ${PGDATA} has no such role; it was initialized with another superuser (by an earlier image, the Dagster user): set POSTGRES_SUPERUSER to that role, or dump the data and restore it into a new cluster"
  fi
  apply_roles
  apply_databases
  "${PG_BIN}/pg_ctl" --wait --timeout=60 --silent --mode=fast stop
  rm -rf "${SETUP_SOCKET_DIR}"
}

main() {
  check_environment
  if [[ ! -s "${PGDATA}/PG_VERSION" ]]; then
    init_cluster
  fi
  apply_setup
  # PID 1 is dumb-init (see the Dockerfile): it turns SIGTERM into SIGINT, PostgreSQL's fast shutdown.
  exec "${PG_BIN}/postgres" -c listen_addresses='*' -c unix_socket_directories="${POSTGRES_SOCKET_DIR}" "$@"
}

main "$@"
