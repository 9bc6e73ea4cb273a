# shellcheck shell=bash
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

# apt_sources: "URI SUITE..." for each binary-package source of the host's apt configuration
# (one-line .list files and deb822 .sources files).
apt_sources() {
  local file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "${file}" ]] || continue
    sed -n -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+([^[:space:]]+).*/\2 \3/p' "${file}"
  done
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -r "${file}" ]] || continue
    awk -v RS= '{
      uri = ""; suites = ""; types = ""
      n = split($0, lines, "\n")
      for (i = 1; i <= n; i++) {
        if (lines[i] ~ /^Types:/) types = lines[i]
        if (lines[i] ~ /^URIs:/) { split(lines[i], fields, /[[:space:]]+/); uri = fields[2] }
        if (lines[i] ~ /^Suites:/) { suites = lines[i]; sub(/^Suites:[[:space:]]*/, "", suites) }
      }
      if (uri != "" && types ~ /[[:space:]]deb([[:space:]]|$)/) print uri, suites
    }' "${file}"
  done
}

# apt_source_uri SUITE: the host's mirror for a Debian suite (e.g. bookworm, bookworm-security),
# so debootstrap uses the mirror the host already trusts, e.g. a corporate one.
apt_source_uri() {
  apt_sources | awk -v suite="$1" '{ for (i = 2; i <= NF; i++) if ($i == suite) { print $1; exit } }'
}

# debian_mirrors RELEASE: sets DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR from the environment, else
# from the host's apt sources; dies naming the variables when neither has them.
debian_mirrors() {
  local release="$1"
  DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(apt_source_uri "${release}")}"
  DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-$(apt_source_uri "${release}-security")}"
  [[ -n "${DEBIAN_MIRROR}" ]] ||
    die "the host's apt sources have no ${release} suite: set DEBIAN_MIRROR to a Debian mirror's URL"
  [[ -n "${DEBIAN_SECURITY_MIRROR}" ]] ||
    die "the host's apt sources have no ${release}-security suite: set DEBIAN_SECURITY_MIRROR"
}
