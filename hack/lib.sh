# Shared shell helpers for the project's scripts. Source it; do not run it.
#   source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib.sh"   (adjust the relative path)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# PROJECT_IMAGE may come from the environment, to build and load another tag of the project image
# (the benchmark's synthetic dbt projects) without replacing the one versions.env names.
PROJECT_IMAGE_FROM_ENV="${PROJECT_IMAGE:-}"
# shellcheck source=../versions.env
source "${REPO_ROOT}/versions.env"
PROJECT_IMAGE="${PROJECT_IMAGE_FROM_ENV:-${PROJECT_IMAGE}}"

# Everything downloaded or built is cached here, outside the repository, keyed by version.
CACHE_DIR="${DAGSTER_DBT_K8S_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/dagster-dbt-k8s}"
CACHE_BIN="${CACHE_DIR}/bin"
STEP_LOG="${CACHE_DIR}/step-timings.log"
mkdir -p "${CACHE_BIN}"
export PATH="${CACHE_BIN}:${PATH}"

log() {
  printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# run_step NAME COMMAND...: runs one step, prints its duration, and appends it to the timing log.
run_step() {
  local name="$1"
  shift
  local start=${SECONDS}
  log "==> ${name}"
  "$@"
  local took=$((SECONDS - start))
  log "<== ${name} (${took}s)"
  printf '%s\t%s\t%ss\n' "$(date -u +%FT%TZ)" "${name}" "${took}" >>"${STEP_LOG}"
}

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: polls COMMAND every 2 s until it succeeds.
wait_for() {
  local what="$1" timeout="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "timed out after ${timeout}s waiting for ${what}"
    fi
    sleep 2
  done
}
