"""Misconfigurations are refused when definitions load, naming the file, the key and the dbt node;
and the platform names nothing of the example project."""

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from dagster_dbt import DagsterDbtTranslator, DbtProject
from dagster_dbt.asset_utils import get_asset_check_key_for_test

from dagster_code.config import PlatformConfigError, load_project_config
from dagster_code.nodes import asset_check_node, plan_project
from dagster_code.release_vars import PLATFORM_VARS, RELEASE_ID_VAR
from dagster_code.run_coordinator import RELEASE_TAG
from tests.conftest import DBT_PROJECT_DIR, REPO_ROOT
from tests.support import parsed_project
from tests.test_any_dbt_project import BLUE_GREEN_PACKAGE, PROJECTS, prepared_project

PLATFORM_DIR = REPO_ROOT / "dagster_code"
ACME_RELEASE = {"select": "path:models/staging path:models/marts"}


@pytest.fixture(scope="module")
def acme_project(tmp_path_factory, pg) -> DbtProject:
    from tests.conftest import warehouse_env

    with pytest.MonkeyPatch.context() as patch:
        for key, value in warehouse_env(pg, "warehouse").items():
            patch.setenv(key, value)
        return prepared_project("acme", tmp_path_factory.mktemp("acme"))


@pytest.fixture(scope="module")
def acme_manifest(acme_project) -> dict:
    return json.loads(acme_project.manifest_path.read_text())


def node_of(manifest: dict, name: str) -> dict:
    return next(node for node in manifest["nodes"].values() if node["name"] == name)


def plan_with(project: DbtProject, manifest: dict, dagster_yml: dict | None = None):
    config_file = Path(project.project_dir) / "dagster.yml"
    original = config_file.read_text()
    try:
        if dagster_yml is not None:
            config_file.write_text(yaml.safe_dump(dagster_yml))
        return plan_project(manifest, project, load_project_config(Path(project.project_dir)))
    finally:
        config_file.write_text(original)


def refused(project, manifest, dagster_yml=None) -> str:
    with pytest.raises(PlatformConfigError) as error:
        plan_with(project, manifest, dagster_yml)
    return str(error.value)


def test_unknown_project_key_is_refused(acme_project, acme_manifest):
    message = refused(acme_project, acme_manifest, {"releases": ACME_RELEASE})
    assert "dagster.yml: releases on the project: unknown key" in message


def test_unknown_release_key_is_refused(acme_project, acme_manifest):
    message = refused(acme_project, acme_manifest, {"release": {**ACME_RELEASE, "selector": "x"}})
    assert "dagster.yml: release.selector on the project: unknown key" in message


def test_unknown_meta_key_is_refused_naming_dbt_project_yml(acme_project, acme_manifest):
    manifest = copy.deepcopy(acme_manifest)
    node_of(manifest, "dim_customers")["config"]["meta"]["dagster_pools"] = "x"
    message = refused(acme_project, manifest)
    assert "dbt_project.yml: dagster_pools on model 'dim_customers' (model.acme.dim_customers): unknown key" in message


def test_pool_on_a_model_is_refused_naming_its_yaml(acme_project, acme_manifest):
    manifest = copy.deepcopy(acme_manifest)
    node = node_of(manifest, "events_windowed")
    node["config"]["meta"]["dagster_pool"] = "events"
    yaml_file = Path(acme_project.project_dir) / "models" / "events" / "_events.yml"
    original = yaml_file.read_text()
    yaml_file.write_text(original.replace("dagster_partitions:", "dagster_pool: events\n        dagster_partitions:"))
    try:
        message = refused(acme_project, manifest)
    finally:
        yaml_file.write_text(original)
    assert f"{yaml_file}: dagster_pool on model 'events_windowed'" in message
    assert "snapshots only" in message


def test_partitions_on_a_view_are_refused(acme_project, acme_manifest):
    manifest = copy.deepcopy(acme_manifest)
    node_of(manifest, "stg_customers")["config"]["meta"]["dagster_partitions"] = {
        "unit": "day",
        "start": "2024-01-01",
        "start_var": "a",
        "end_var": "b",
    }
    message = refused(acme_project, manifest)
    assert "dagster_partitions on model 'stg_customers' (model.acme.stg_customers)" in message
    assert "incremental model, not 'view'" in message


def test_unknown_partitions_key_is_refused(acme_project, acme_manifest):
    manifest = copy.deepcopy(acme_manifest)
    node_of(manifest, "events_windowed")["config"]["meta"]["dagster_partitions"]["timezone"] = "UTC"
    message = refused(acme_project, manifest)
    assert "_events.yml: dagster_partitions.timezone on model 'events_windowed'" in message


def test_microbatch_without_begin_is_refused(acme_project, acme_manifest):
    manifest = copy.deepcopy(acme_manifest)
    node_of(manifest, "events_hourly")["config"]["begin"] = None
    message = refused(acme_project, manifest)
    assert "events_hourly.sql: begin on model 'events_hourly' (model.acme.events_hourly)" in message


def test_microbatch_with_unsupported_batch_size_is_refused(acme_project, acme_manifest):
    manifest = copy.deepcopy(acme_manifest)
    node_of(manifest, "events_monthly")["config"]["batch_size"] = "week"
    message = refused(acme_project, manifest)
    assert "events_monthly.sql: batch_size on model 'events_monthly'" in message
    assert "'week' is not one of hour, day, month, year" in message


def test_release_selecting_nothing_is_refused(acme_project, acme_manifest):
    message = refused(acme_project, acme_manifest, {"release": {"select": "path:models/nowhere"}})
    assert "dagster.yml: release.select on selection 'path:models/nowhere': selects no model" in message


def test_release_on_adapter_without_blue_green_macros_is_refused(acme_project, acme_manifest):
    manifest = copy.deepcopy(acme_manifest)
    manifest["metadata"]["adapter_type"] = "duckdb"
    message = refused(acme_project, manifest)
    assert "dagster.yml: release on adapter 'duckdb': no duckdb__clone_green_to_blue" in message


@pytest.mark.parametrize("var", PLATFORM_VARS)
def test_platform_var_from_a_run_tag_is_refused(tmp_path, var):
    """A run tag setting the release id or a schema would make a run build or promote another
    release than its run group's."""
    config_file = tmp_path / "dagster.yml"
    config_file.write_text(yaml.safe_dump({"vars_from_run_tags": {"slow_seconds": "team/slow", var: "team/x"}}))
    with pytest.raises(PlatformConfigError) as error:
        load_project_config(tmp_path)
    assert f"{config_file}: vars_from_run_tags.{var} on the project: dbt var '{var}' is set by the platform" in str(
        error.value
    )


def test_release_tag_in_release_run_tags_is_refused_and_other_tags_are_added(tmp_path):
    """The platform's release tag serializes releases; a project's run_tags add to it, never
    replace it (the run coordinator puts it on every run that selects a release asset)."""
    config_file = tmp_path / "dagster.yml"
    release = {"select": "path:models", "run_tags": {"team": "sales"}}
    config_file.write_text(yaml.safe_dump({"release": release}))
    assert dict(load_project_config(tmp_path).release.run_tags) == {"team": "sales"}
    config_file.write_text(yaml.safe_dump({"release": {**release, "run_tags": {RELEASE_TAG: "mine"}}}))
    with pytest.raises(PlatformConfigError) as error:
        load_project_config(tmp_path)
    assert f"{config_file}: release.run_tags.{RELEASE_TAG} on the project: the platform sets this tag" in str(
        error.value
    )


def test_platform_vars_name_every_var_the_release_macros_read():
    macros = "".join(path.read_text() for path in (PLATFORM_DIR / "dbt_blue_green").rglob("*.sql"))
    assert set(re.findall(r"var\('(\w+)'", macros)) | {RELEASE_ID_VAR} == set(PLATFORM_VARS)


def test_invalid_cron_is_refused(acme_project, acme_manifest):
    message = refused(acme_project, acme_manifest, {"tests_schedules": [{"tag": "nightly", "cron": "every hour"}]})
    assert "dagster.yml: tests_schedules[0].cron on tests schedule of tag 'nightly'" in message


def test_unknown_timezone_is_refused(acme_project, acme_manifest):
    message = refused(
        acme_project,
        acme_manifest,
        {"tests_schedules": [{"tag": "nightly", "cron": "0 3 * * *", "timezone": "Mars/Olympus"}]},
    )
    assert "tests_schedules[0].timezone" in message


def _example_names(manifest: dict) -> set[str]:
    """Every name the example project defines: its own name, nodes, sources and their tables,
    tags, folders, and its own vars (not those of the blue/green package it uses)."""
    names: set[str] = {manifest["metadata"]["project_name"]}
    for node in manifest["nodes"].values():
        if node["package_name"] != manifest["metadata"]["project_name"]:
            continue
        if node["resource_type"] in ("model", "seed", "snapshot"):
            names.add(node["name"])
        names.update(node.get("tags", []))
        names.update(Path(node["original_file_path"]).parts[1:-1])
    for source in manifest["sources"].values():
        names.update({source["source_name"], source["name"], source["identifier"], source["schema"]})
    package_macros = "".join(path.read_text() for path in (PLATFORM_DIR / "dbt_blue_green").rglob("*.sql"))
    package_vars = set(re.findall(r"var\('(\w+)'", package_macros)) | {"release_id"}
    project_vars = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    names.update(set(project_vars) - package_vars)
    return names


# Kernel interfaces the platform reads whose names happen to be words the example uses (its
# `events` folder): cgroup v2's OOM counters (dagster_code/out_of_memory.py).
KERNEL_FILE_NAMES = ("memory.events",)


def test_platform_names_nothing_of_the_example(dbt_manifest):
    names = _example_names(json.loads(dbt_manifest.read_text()))
    assert {"analytics", "fct_app_events_microbatch", "snap_orders", "marts", "hourly_tests", "start_date"} <= names
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names))) + r")\b")
    hits = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {match.group(0)}"
        for path in sorted(PLATFORM_DIR.rglob("*"))
        if path.suffix in (".py", ".yml", ".yaml", ".sql") and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for match in pattern.finditer(_without_kernel_file_names(line))
    ]
    assert not hits, "dagster_code/ names the example project:\n" + "\n".join(hits)


def _without_kernel_file_names(line: str) -> str:
    for name in KERNEL_FILE_NAMES:
        line = line.replace(name, "")
    return line


# A singular test over two release models and one over two seeds (not in acme's release).
SINGULAR_TESTS = {
    "assert_customers_match_countries.sql": (
        "select 1 from {{ ref('dim_customers') }} c\nfull join {{ ref('mart_countries') }} m on false\nwhere false\n"
    ),
    "assert_seeds_overlap.sql": (
        "select 1 from {{ ref('customers_seed') }} c\nfull join {{ ref('countries_seed') }} s on false\nwhere false\n"
    ),
}


@pytest.fixture(scope="module")
def acme_with_singular_tests(tmp_path_factory, pg) -> tuple[DbtProject, dict]:
    from tests.conftest import warehouse_env

    project_dir = tmp_path_factory.mktemp("acme_tests") / "acme"
    shutil.copytree(PROJECTS / "acme", project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    shutil.copytree(BLUE_GREEN_PACKAGE, project_dir / "dbt_packages" / "dagster_blue_green")
    (project_dir / "tests").mkdir()
    for name, sql in SINGULAR_TESTS.items():
        (project_dir / "tests" / name).write_text(sql)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in warehouse_env(pg, "warehouse").items():
            patch.setenv(key, value)
        project = parsed_project(project_dir)
    return project, json.loads(project.manifest_path.read_text())


def _with_ref(manifest: dict, test_name: str, ref: dict) -> dict:
    changed = copy.deepcopy(manifest)
    test = node_of(changed, test_name)
    test["config"]["meta"] = {"dagster": {"ref": ref}}
    return changed


def test_release_test_that_is_no_asset_check_is_refused_naming_it_and_the_fix(acme_with_singular_tests):
    project, manifest = acme_with_singular_tests

    message = refused(project, manifest)

    test_file = Path(project.project_dir) / "tests" / "assert_customers_match_countries.sql"
    assert f"{test_file}: config.meta.dagster.ref on test 'assert_customers_match_countries'" in message
    assert "reads release models dim_customers, mart_countries" in message
    assert "(it reads several nodes)" in message
    assert "`config: meta: dagster: ref: {name: dim_customers}`" in message
    # A ref that names no node makes no asset check either.
    message = refused(project, _with_ref(manifest, "assert_customers_match_countries", {"name": "dim_customer"}))
    assert "its meta.dagster.ref {'name': 'dim_customer'} names no node" in message


def test_release_test_attached_to_a_model_loads_and_is_an_asset_check(acme_with_singular_tests):
    project, manifest = acme_with_singular_tests
    attached = _with_ref(manifest, "assert_customers_match_countries", {"name": "mart_countries"})

    plan = plan_with(project, attached)

    assert plan.release is not None
    # Its check is the one dagster-dbt makes (the seeds' test stays no check: it reads no release model).
    translator = DagsterDbtTranslator()
    for unique_id, node in attached["nodes"].items():
        if node["resource_type"] == "test":
            check = get_asset_check_key_for_test(attached, translator, unique_id, project)
            node_id = asset_check_node(attached, node)
            expected = translator.get_asset_spec(attached, node_id, project).key if node_id else None
            assert (check.asset_key if check else None) == expected, unique_id


def test_test_that_is_no_asset_check_loads_without_a_release(acme_with_singular_tests):
    project, manifest = acme_with_singular_tests

    plan = plan_with(project, manifest, {"snapshots": {"default_pool": "dbt-snapshots"}})

    assert plan.release is None
