#!/usr/bin/env bash
# `make dev`: the Dagster UI and daemon locally, on an embedded PostgreSQL (Ctrl-C stops both).
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"
exec uv run --frozen python -m dagster_code.local.dev
