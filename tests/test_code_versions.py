"""Code versions see macros (transitively), ephemeral parents and YAML snapshot configs.

Each test edits a copy of the dbt project, parses it with real dbt, and compares every
asset's code version before and after: exactly the expected assets change.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dagster_code.code_versions import macro_aware_code_version
from tests.conftest import DBT_PROJECT_DIR


def _code_versions(project_dir: Path, env: dict[str, str]) -> dict[str, str]:
    subprocess.run(
        ["dbt", "parse", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)],
        env=env,
        check=True,
        capture_output=True,
    )
    manifest = json.loads((project_dir / "target" / "manifest.json").read_text())
    return {
        props["name"]: macro_aware_code_version(manifest, unique_id)
        for unique_id, props in manifest["nodes"].items()
        if props["resource_type"] in ("model", "snapshot") and props["config"].get("materialized") != "ephemeral"
    }


@pytest.fixture
def project_copy(tmp_path: Path, warehouse) -> Path:
    copy = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    return copy


def _changed_after(project: Path, edit) -> set[str]:
    env = dict(os.environ)
    before = _code_versions(project, env)
    edit(project)
    after = _code_versions(project, env)
    assert before.keys() == after.keys()
    return {name for name in before if before[name] != after[name]}


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _edit_macro_body(path: Path) -> None:
    """A comment inside the macro's body: its SQL changes, what it renders does not."""
    text, count = re.subn(r"(\{%-?\s*macro[^%]*-?%\})", r"\1{# changed #}", path.read_text(), count=1)
    assert count == 1, f"no macro found in {path}"
    path.write_text(text)


def test_macro_change_reaches_models_through_macros_and_ephemeral_models(project_copy):
    # line_revenue is called only by the ephemeral int_order_lines_priced, which only
    # int_orders_enriched selects from: no model mentions the macro in its own SQL.
    changed = _changed_after(
        project_copy,
        lambda p: _edit_macro_body(p / "macros" / "line_revenue.sql"),
    )
    assert changed == {"int_orders_enriched"}


def test_transitive_macro_change_reaches_every_caller(project_copy):
    # round_money is called by dim_customers and dim_products directly, and through
    # line_revenue (which calls it) by the ephemeral model under int_orders_enriched.
    changed = _changed_after(
        project_copy,
        lambda p: _edit_macro_body(p / "macros" / "round_money.sql"),
    )
    assert changed == {"dim_customers", "dim_products", "int_orders_enriched"}


def test_ephemeral_model_change_reaches_its_consumers(project_copy):
    changed = _changed_after(
        project_copy,
        lambda p: _append(p / "models" / "intermediate" / "int_order_lines_priced.sql", "\n-- changed\n"),
    )
    assert changed == {"int_orders_enriched"}


def test_yaml_snapshot_config_change_changes_its_version(project_copy):
    def edit(project: Path) -> None:
        path = project / "snapshots" / "sales" / "snap_customers.yml"
        path.write_text(
            path.read_text().replace(
                "      strategy: timestamp\n      updated_at: updated_at\n",
                "      strategy: check\n      check_cols: [email, country]\n",
            )
        )

    assert _changed_after(project_copy, edit) == {"snap_customers"}
