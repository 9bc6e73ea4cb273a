"""Code versions see macros (transitively), ephemeral parents, YAML snapshot configs, the
materialization macro, sources and seeds; a release's fingerprint sees vars, dbt's and the
packages' versions and its models' inputs, and neither sees descriptions.

Most tests edit a copy of a dbt project, parse it with real dbt, and compare every asset's code
version before and after: exactly the expected assets change. Source relations are edited in the
parsed manifest itself (what dbt parses them into is plain data).
"""

import copy
import json
import os
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from dagster_code.code_versions import CodeVersions, macro_aware_code_version, materialization_macro_id
from dagster_code.release_fingerprint import fingerprint_differences, release_fingerprint
from tests.conftest import DBT_PROJECT_DIR
from tests.test_any_dbt_project import PROJECTS


def _parsed_manifest(project_dir: Path, env: dict[str, str]) -> dict:
    subprocess.run(
        ["dbt", "parse", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)],
        env=env,
        check=True,
        capture_output=True,
    )
    return json.loads((project_dir / "target" / "manifest.json").read_text())


def _versions_of(manifest: dict) -> dict[str, str]:
    return {
        props["name"]: macro_aware_code_version(manifest, unique_id)
        for unique_id, props in manifest["nodes"].items()
        if props["resource_type"] in ("model", "snapshot", "seed")
        and props["config"].get("materialized") != "ephemeral"
    }


def _code_versions(project_dir: Path, env: dict[str, str]) -> dict[str, str]:
    return _versions_of(_parsed_manifest(project_dir, env))


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


@pytest.fixture
def minimal_copy(tmp_path: Path, warehouse) -> Path:
    """The smallest project: a seed `countries`, the view stg_countries on it, country_count on that."""
    copy_dir = tmp_path / "minimal"
    shutil.copytree(PROJECTS / "minimal", copy_dir, ignore=shutil.ignore_patterns("target", "logs"))
    return copy_dir


def test_seed_contents_change_the_seed_and_its_readers(minimal_copy):
    changed = _changed_after(minimal_copy, lambda p: _append(p / "seeds" / "countries.csv", "IT,Italy\n"))
    # country_count reads the view stg_countries, an asset of its own: its code is unchanged.
    assert changed == {"countries", "stg_countries"}


def test_project_materialization_override_changes_the_models_it_builds(minimal_copy):
    # Both models are views (dbt's default); no model's depends_on names a materialization.
    override = "{% materialization view, default %}{{ return({'relations': []}) }}{% endmaterialization %}\n"

    def edit(project: Path) -> None:
        (project / "macros").mkdir()
        (project / "macros" / "materialization_view.sql").write_text(override)

    assert _changed_after(minimal_copy, edit) == {"stg_countries", "country_count"}


@pytest.fixture(scope="module")
def example_manifest(dbt_manifest) -> dict:
    return json.loads(dbt_manifest.read_text())


def _set_source_field(field: str, value):
    def edit(manifest: dict) -> None:
        manifest["sources"]["source.analytics.shop.orders"][field] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_set_source_field("schema", "raw_v2"), {"stg_shop__orders", "snap_orders"}),
        (_set_source_field("database", "other"), {"stg_shop__orders", "snap_orders"}),
        (_set_source_field("identifier", "orders_v2"), {"stg_shop__orders", "snap_orders"}),
        (_set_source_field("quoting", {"identifier": True}), {"stg_shop__orders", "snap_orders"}),
        (_set_source_field("description", "Reworded."), set()),
        (_set_source_field("freshness", {"warn_after": {"count": 1, "period": "hour"}}), set()),
    ],
    ids=["schema", "database", "identifier", "quoting", "description", "freshness"],
)
def test_source_relation_changes_its_readers_versions_its_descriptions_do_not(example_manifest, edit, expected):
    changed_manifest = copy.deepcopy(example_manifest)
    edit(changed_manifest)
    before, after = _versions_of(example_manifest), _versions_of(changed_manifest)
    assert {name for name in before if before[name] != after[name]} == expected


def _release_project_dir(tmp_path: Path, package_version: str = "1.0.0") -> Path:
    """What release_fingerprint reads of a project besides its manifest: dbt_project.yml and the
    packages installed under dbt_packages/."""
    project_dir = tmp_path / "project"
    package_dir = project_dir / "dbt_packages" / "dagster_blue_green"
    package_dir.mkdir(parents=True)
    shutil.copy(DBT_PROJECT_DIR / "dbt_project.yml", project_dir)
    (package_dir / "dbt_project.yml").write_text(f'name: dagster_blue_green\nversion: "{package_version}"\n')
    return project_dir


def _example_fingerprint(manifest: dict, project_dir: Path) -> dict[str, str]:
    release_models = [uid for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"]
    return release_fingerprint(manifest, project_dir, release_models, ["release_id", "slow_model_seconds"])


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_release_fingerprint_names_each_changed_var_version_package_and_input(example_manifest, tmp_path, monkeypatch):
    recorded = _example_fingerprint(example_manifest, _release_project_dir(tmp_path / "recorded"))
    project_dir = _release_project_dir(tmp_path / "current", package_version="1.1.0")
    _replace_in(project_dir / "dbt_project.yml", 'start_date: "2024-01-01"', 'start_date: "2023-01-01"')
    installed = metadata.version
    next_dbt = f"{installed('dbt-core')}.post1"
    monkeypatch.setattr(metadata, "version", lambda name: next_dbt if name == "dbt-core" else installed(name))
    manifest = copy.deepcopy(example_manifest)
    manifest["sources"]["source.analytics.shop.orders"]["schema"] = "raw_v2"

    differences = fingerprint_differences(recorded, _example_fingerprint(manifest, project_dir))

    assert [line.rsplit(" ", 3)[0] for line in differences] == [
        "dbt-core",
        "package 'dagster_blue_green'",
        "source 'shop.orders'",
        "var 'start_date'",
    ], differences
    assert f"dbt-core {installed('dbt-core')} -> {next_dbt}" in differences
    assert "package 'dagster_blue_green' 1.0.0 -> 1.1.0" in differences


def test_release_fingerprint_ignores_per_run_vars_and_descriptions(example_manifest, tmp_path):
    recorded = _example_fingerprint(example_manifest, _release_project_dir(tmp_path / "recorded"))
    project_dir = _release_project_dir(tmp_path / "current")
    # Vars the platform passes per run (release_id, a run-tag var) differ between runs by design.
    _replace_in(project_dir / "dbt_project.yml", "release_id: unreleased", "release_id: other")
    _replace_in(project_dir / "dbt_project.yml", "slow_model_seconds: 0", "slow_model_seconds: 5")
    manifest = copy.deepcopy(example_manifest)
    manifest["sources"]["source.analytics.shop.orders"]["description"] = "Reworded."

    assert fingerprint_differences(recorded, _example_fingerprint(manifest, project_dir)) == []


def test_release_fingerprint_names_a_changed_seed(minimal_copy):
    env = dict(os.environ)
    manifest = _parsed_manifest(minimal_copy, env)
    models = [uid for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"]
    recorded = release_fingerprint(manifest, minimal_copy, models, [])
    _append(minimal_copy / "seeds" / "countries.csv", "IT,Italy\n")
    manifest = _parsed_manifest(minimal_copy, env)

    differences = fingerprint_differences(recorded, release_fingerprint(manifest, minimal_copy, models, []))

    assert [line.split(" sha256:")[0] for line in differences] == ["seed 'countries' contents"], differences


def test_code_versions_of_a_manifest_equal_one_node_at_a_time(example_manifest):
    """The per-manifest cache of materialization digests changes no version."""
    code_versions = CodeVersions(example_manifest)
    for unique_id in example_manifest["nodes"]:
        if unique_id.startswith(("model.", "snapshot.")):
            assert code_versions.of(unique_id) == macro_aware_code_version(example_manifest, unique_id), unique_id


def test_materialization_macro_is_the_one_dbt_runs(example_manifest):
    manifest = copy.deepcopy(example_manifest)
    root = manifest["metadata"]["project_name"]

    def add(package: str, name: str) -> None:
        unique_id = f"macro.{package}.{name}"
        manifest["macros"][unique_id] = {
            "name": name,
            "package_name": package,
            "unique_id": unique_id,
            "macro_sql": "",
            "depends_on": {"macros": []},
        }

    assert materialization_macro_id(manifest, "table") == "macro.dbt.materialization_table_default"
    # Another package's never replaces dbt's own (dbt's default since 1.8)...
    add("some_package", "materialization_table_default")
    assert materialization_macro_id(manifest, "table") == "macro.dbt.materialization_table_default"
    # ...the project's own does...
    add(root, "materialization_table_default")
    assert materialization_macro_id(manifest, "table") == f"macro.{root}.materialization_table_default"
    # ...and one for the adapter comes before any default.
    add("dbt_postgres", "materialization_table_postgres")
    assert materialization_macro_id(manifest, "table") == "macro.dbt_postgres.materialization_table_postgres"
    assert materialization_macro_id(manifest, "ephemeral") is None
