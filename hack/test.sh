#!/usr/bin/env bash
# Runs the fast suite (no cluster), or the pytest paths given. pytest's exit code 5
# ("no tests collected") is a failure like any other non-zero code.
#
# The whole fast suite runs on TEST_WORKERS pytest-xdist workers (default 4 on any core count: while
# one worker's daemon test waits on a run queue, another's dbt computes); each worker starts its
# own PostgreSQL server.
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"
if (($# == 0)); then
  set -- tests -n "${TEST_WORKERS:-4}" --durations=15
fi
# The cluster suites (make k8s-test) check the Dagster UI in Debian's headless Chromium.
if [[ " $* " == *" k8s_tests"* ]]; then
  "${REPO_ROOT}/hack/install-chromium.sh"
fi
exec uv run --frozen pytest "$@"
