#!/usr/bin/env bash
# `make materialize SELECT="..."`: materialize the dbt assets a dbt selection picks, as a run
# of the running `make dev` Dagster (its webserver on DEV_WEBSERVER_PORT, default 3000).
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"
exec uv run --frozen python -m dagster_code.local.materialize "$@"
