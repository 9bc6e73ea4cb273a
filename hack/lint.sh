#!/usr/bin/env bash
# Lints the repository: ruff (lint and format check) over the Python, shellcheck over every shell
# script git tracks. Both come pinned from uv.lock's dev group.
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"

shell_scripts() {
  git ls-files '*.sh' .ci/run
}

main() {
  run_step "ruff check" uv run --frozen ruff check .
  run_step "ruff format --check" uv run --frozen ruff format --check .
  local scripts=()
  mapfile -t scripts < <(shell_scripts)
  run_step "shellcheck (${#scripts[@]} scripts)" uv run --frozen shellcheck "${scripts[@]}"
}

main "$@"
