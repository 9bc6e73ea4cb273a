#!/usr/bin/env bash
# Runs the fast suite (no cluster), or the pytest paths given. pytest's exit code 5
# ("no tests collected") is a failure like any other non-zero code.
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"
if (($# == 0)); then
  set -- tests
fi
exec uv run --frozen pytest "$@"
