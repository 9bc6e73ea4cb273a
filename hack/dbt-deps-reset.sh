#!/usr/bin/env bash
# Recovery from snapshot or model compile errors after a package update (stale macros in
# dbt_packages/): `dbt clean && dbt deps`, then parse again. The project pins no external
# package today (none is reachable from air-gapped machines); this keeps the recovery one
# command away when one is added to packages.yml with its package-lock.yml.
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
project_dir="${REPO_ROOT}/dbt_project"
cd "${project_dir}"
dbt_args=(--project-dir "${project_dir}" --profiles-dir "${project_dir}")
run_step "dbt clean" uv run --frozen dbt clean "${dbt_args[@]}"
run_step "dbt deps" uv run --frozen dbt deps "${dbt_args[@]}"
run_step "dbt parse" uv run --frozen dbt parse "${dbt_args[@]}"
