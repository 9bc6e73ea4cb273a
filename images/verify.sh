#!/usr/bin/env bash
# Checks the built images (make image) on the local Docker engine, and measures the code server's
# cold start. Nothing is pulled; containers use no network or one this script creates, and
# everything it starts is removed on exit.
#
# Environment:
#   COLD_START_TIMEOUT  seconds the code server may take to pass its health check (default 120)
set -o errexit -o nounset -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib.sh"

COLD_START_TIMEOUT="${COLD_START_TIMEOUT:-120}"
SUFFIX="verify-$$"
NETWORK="${SUFFIX}-net"
VOLUME="${SUFFIX}-pgdata"
PG_CONTAINER="${SUFFIX}-postgres"
CODE_CONTAINER="${SUFFIX}-code-server"
PG_PASSWORD="verify-only-password"

cleanup() {
  docker rm -f "${PG_CONTAINER}" "${CODE_CONTAINER}" >/dev/null 2>&1 || true
  docker volume rm "${VOLUME}" >/dev/null 2>&1 || true
  docker network rm "${NETWORK}" >/dev/null 2>&1 || true
}
trap cleanup EXIT

project_run() {
  docker run --rm --pull never --network none "${PROJECT_IMAGE}" "$@"
}

check_project_image() {
  project_run dagster --version
  # dbt --version asks PyPI for the latest release: with no network it only says it could not.
  project_run dbt --version 2>&1 | grep -E 'installed|postgres|snowflake'
  [[ "$(project_run id -u)" == 10001 ]] || die "${PROJECT_IMAGE} does not run as UID 10001"
  project_run sh -c 'test -s "${DBT_PROJECT_DIR}/target/manifest.json"' \
    || die "${PROJECT_IMAGE} has no manifest at \$DBT_PROJECT_DIR/target/manifest.json"
  project_run sh -c 'touch "${DAGSTER_HOME}/probe" "${DBT_PROJECT_DIR}/target/probe" "${DBT_PROJECT_DIR}/logs/probe"' \
    || die "DAGSTER_HOME or the dbt target/logs directories are not writable by UID 10001"
  project_run sh -c 'dagster definitions validate -m "${DAGSTER_MODULE}"' >/dev/null 2>&1 \
    || die "the definitions in ${PROJECT_IMAGE} do not load: run dagster definitions validate in it"
  log "project image: dagster, dbt, UID 10001, manifest, writable dirs, definitions load"
}

# Container start to the first passing `dagster api grpc-health-check`, run inside the container.
measure_cold_start() {
  local start end
  start=$(date +%s%N)
  docker run -d --pull never --name "${CODE_CONTAINER}" --network none "${PROJECT_IMAGE}" >/dev/null
  until docker exec "${CODE_CONTAINER}" dagster api grpc-health-check -p 3030 >/dev/null 2>&1; do
    if (($(date +%s%N) - start > COLD_START_TIMEOUT * 1000000000)); then
      docker logs --tail 20 "${CODE_CONTAINER}" >&2 || true
      die "the code server did not pass its health check within ${COLD_START_TIMEOUT}s"
    fi
    sleep 0.5
  done
  end=$(date +%s%N)
  log "code server cold start: $(((end - start) / 1000000)) ms (container start -> gRPC health check)"
  docker rm -f "${CODE_CONTAINER}" >/dev/null
}

# The restricted Pod Security Standard's shape: UID 999, no capabilities, read-only root.
start_postgres() {
  docker run -d --pull never --name "${PG_CONTAINER}" --network "${NETWORK}" \
    --user 999:999 --cap-drop ALL --security-opt no-new-privileges --read-only \
    --tmpfs /var/run/postgresql:uid=999,gid=999 --tmpfs /tmp:uid=999,gid=999 \
    -v "${VOLUME}:/var/lib/postgresql/data" -e POSTGRES_PASSWORD="${PG_PASSWORD}" "$@" \
    "${POSTGRES_IMAGE}" >/dev/null
  wait_for "PostgreSQL in ${PG_CONTAINER} to accept connections" 60 \
    docker exec "${PG_CONTAINER}" pg_isready -q -h 127.0.0.1
}

psql_as() {
  local password="$1"
  shift
  docker exec -e PGPASSWORD="${password}" "${PG_CONTAINER}" \
    psql --no-psqlrc -h 127.0.0.1 -U dagster -v ON_ERROR_STOP=1 -tA "$@"
}

# Seconds (with milliseconds) that COMMAND took.
timed() {
  local start ms
  start=$(date +%s%N)
  "$@" >/dev/null
  ms=$((($(date +%s%N) - start) / 1000000))
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

check_postgres_image() {
  local out took databases
  out="$(docker run --rm --pull never --network none "${POSTGRES_IMAGE}" 2>&1 || true)"
  grep -q POSTGRES_PASSWORD <<<"${out}" || die "a missing POSTGRES_PASSWORD is not named: ${out}"

  docker network create "${NETWORK}" >/dev/null
  docker volume create "${VOLUME}" >/dev/null
  start_postgres
  databases="$(psql_as "${PG_PASSWORD}" -d postgres \
    -c "select string_agg(datname, ' ' order by datname) from pg_database where datname in ('dagster', 'warehouse')")"
  [[ "${databases}" == "dagster warehouse" ]] || die "the databases dagster and warehouse were not created"
  psql_as "${PG_PASSWORD}" -d warehouse -c 'create table verify_kept as select 42 as answer' >/dev/null
  if psql_as wrong-password -d warehouse -c 'select 1' >/dev/null 2>&1; then
    die "a wrong password was accepted"
  fi
  took="$(timed docker stop "${PG_CONTAINER}")"
  log "docker stop took ${took}s"
  docker rm "${PG_CONTAINER}" >/dev/null

  start_postgres -e POSTGRES_DATABASES="dagster warehouse added_later"
  [[ "$(psql_as "${PG_PASSWORD}" -d warehouse -c 'select answer from verify_kept')" == 42 ]] \
    || die "data written before the restart is gone"
  psql_as "${PG_PASSWORD}" -d added_later -c 'select 1' >/dev/null || die "a database added later was not created"
  # Kubernetes sends SIGTERM; an open client must not hold the shutdown up.
  docker exec -d -e PGPASSWORD="${PG_PASSWORD}" "${PG_CONTAINER}" \
    psql -h 127.0.0.1 -U dagster -d dagster -c 'select pg_sleep(600)'
  sleep 1
  took="$(timed sh -c "docker kill -s TERM '${PG_CONTAINER}' && docker wait '${PG_CONTAINER}'")"
  docker logs "${PG_CONTAINER}" 2>&1 | grep -q 'fast shutdown request' || die "SIGTERM did not cause a fast shutdown"
  log "SIGTERM with an open client: fast shutdown in ${took}s"
  log "postgres image: password required, databases, scram login, data kept, restricted shape, fast stop"
}

main() {
  DOCKER_VERIFY=0 "${REPO_ROOT}/hack/docker-engine.sh"
  run_step "check ${PROJECT_IMAGE}" check_project_image
  run_step "code server cold start" measure_cold_start
  run_step "check ${POSTGRES_IMAGE}" check_postgres_image
}

main "$@"
