"""The Makefile hands what a user sets (SELECT, DBT_PROJECT, the *_ARGS lists) to its scripts
through the environment: never pasted into a shell line, where quotes or `$(...)` would run."""

from __future__ import annotations

import re
import subprocess
import uuid

from tests.conftest import REPO_ROOT

MAKEFILE = REPO_ROOT / "Makefile"


def exported_variables() -> list[str]:
    (line,) = [line for line in MAKEFILE.read_text().splitlines() if line.startswith("USER_VARIABLES := ")]
    return line.split()[2:]


def test_no_user_variable_is_pasted_into_a_recipe():
    variables = exported_variables()
    assert {"SELECT", "DBT_PROJECT", "K8S_TEST_ARGS"} <= set(variables)
    recipes = [line for line in MAKEFILE.read_text().splitlines() if line.startswith("\t")]
    # `$(VAR)` and `${VAR}` are make's expansion; `$${VAR}` is the shell's, of the environment.
    pasted = [line for line in recipes for name in variables if re.search(rf"(?<!\$)\$[({{]{name}[)}}]", line)]
    assert not pasted, f"recipes that paste a user variable into the shell line: {pasted}"
    # Every variable a recipe reads is exported (a `?=` default included).
    assignments = re.findall(r"^([A-Z_]+) \?=", MAKEFILE.read_text(), re.MULTILINE)
    assert set(assignments) <= set(variables)


def test_a_selection_with_shell_syntax_runs_no_command(dbt_manifest):
    """`make materialize` with a SELECT holding command substitutions (the shell's and make's own)
    and both quotes: no command runs, and the selection reaches the script as one argument, as typed."""
    # Relative (no `/`: dbt reads a selector with one as a path), so in the recipe's directory.
    marker = f"select-ran-{uuid.uuid4().hex}"
    select = f"""tag:x $(touch {marker}) $(shell touch {marker}) `touch {marker}` "it's" """
    try:
        # -o setup: the install step is not what is tested (the suite's own setup did it).
        result = subprocess.run(
            ["make", "--no-print-directory", "-o", "setup", "materialize", f"SELECT={select}"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert not (REPO_ROOT / marker).exists(), "a command in SELECT ran"
    finally:
        (REPO_ROOT / marker).unlink(missing_ok=True)
    assert result.returncode != 0
    assert f"the dbt selection '{select}' matches no asset" in result.stderr, result.stderr[-2000:]
