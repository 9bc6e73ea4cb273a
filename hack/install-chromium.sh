#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its matching chromedriver, which the cluster
# suites' UI check (k8s_tests/harness/browser.py) drives through Selenium. Both come from the
# host's apt archive: Selenium is pointed at /usr/bin/chromedriver, so it never downloads a browser
# or a driver itself. fonts-liberation (a Recommends of chromium, not installed with
# --no-install-recommends) gives the screenshots readable text. Idempotent: does nothing when both
# binaries are there.
set -o errexit -o nounset -o pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHROMIUM_PACKAGES=(chromium chromium-driver fonts-liberation)

installed() {
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]
}

install_chromium() {
  log "installing ${CHROMIUM_PACKAGES[*]} from Debian's archive"
  # Waits for apt's lock rather than failing when another install holds it; a stale package index
  # names versions the mirror no longer has: update once and retry.
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -qq)
  [[ "$(id -u)" == 0 ]] || apt=(sudo "${apt[@]}")
  "${apt[@]}" install --no-install-recommends "${CHROMIUM_PACKAGES[@]}" >/dev/null ||
    { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends "${CHROMIUM_PACKAGES[@]}" >/dev/null; }
  installed || die "apt-get installed ${CHROMIUM_PACKAGES[*]}, but /usr/bin/chromium or /usr/bin/chromedriver is missing"
}

main() {
  if installed; then
    log "chromium and chromedriver already installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
    return
  fi
  run_step "chromium and chromedriver (Debian)" install_chromium
  log "$(/usr/bin/chromium --version 2>/dev/null | head -1); $(/usr/bin/chromedriver --version | head -1)"
}

main "$@"
