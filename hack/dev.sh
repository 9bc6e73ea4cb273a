#!/usr/bin/env bash
# `make dev`: the Dagster UI and daemon locally, on an embedded PostgreSQL (Ctrl-C stops both).
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"
# DBT_PROJECT: the dbt project to run (default: the example, dbt_project/).
DBT_PROJECT_DIR="$(realpath "${DBT_PROJECT:-dbt_project}")"
[[ -f "${DBT_PROJECT_DIR}/dbt_project.yml" ]] || die "DBT_PROJECT=${DBT_PROJECT:-dbt_project}: no dbt_project.yml there"
export DBT_PROJECT_DIR
exec uv run --frozen python -m dagster_code.local.dev
