"""The code location's definitions: groups, jobs, pools and the settings it shares with the
chart; and clear errors for missing settings."""

import os
import shutil
import subprocess

import dagster as dg
import pytest

from dagster_code.local.instance import chart_values, pool_limits
from dagster_code.retries import DEFAULT_RETRY_STRATEGY, retryable_after_lost_connection
from dagster_code.run_coordinator import RELEASE_TAG
from dagster_code.warehouse import MissingWarehouseSetting, postgres_conninfo
from tests.conftest import DBT_PROJECT_DIR, REPO_ROOT
from tests.support import load_raw, run_job

ASSET_JOBS = (
    "release_job",
    "raw_data_job",
    "sales_snapshots_job",
    "inventory_snapshots_job",
    "app_events_incremental_job",
    "app_events_microbatch_job",
)


def _asset_specs(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}


def test_dbt_assets_are_grouped_by_folder(defs):
    groups = {name: node.group_name for name, node in _asset_specs(defs).items()}
    assert groups["stg_shop__orders"] == "staging"
    assert groups["int_orders_enriched"] == "intermediate"
    assert groups["fct_orders"] == "marts"
    assert groups["fct_app_events_microbatch"] == "app_events"
    assert groups["snap_customers"] == "sales_snapshots"
    assert groups["snap_inventory_levels"] == "inventory_snapshots"


def test_every_asset_job_carries_the_lost_connection_hook_and_no_retry_tags(defs):
    """Retry tags come to every run from the run coordinator, so a job sets none."""
    for name in ASSET_JOBS:
        assert retryable_after_lost_connection in defs.resolve_job_def(name).hook_defs, name
        assert not {tag for tag in defs.resolve_job_def(name).tags if tag.startswith("dagster/retry")}, name


def test_retry_defaults_equal_the_chart_defaults():
    assert chart_values()["dagsterDaemon"]["runRetries"]["strategy"] == DEFAULT_RETRY_STRATEGY


def test_every_release_asset_and_only_those_carry_the_release_tag(defs):
    """The run coordinator serializes every run that selects an asset tagged so."""
    release = set(defs.resolve_job_def("release_job").asset_layer.executable_asset_keys)
    tagged = {node.key for node in defs.resolve_asset_graph().asset_nodes if RELEASE_TAG in node.tags}
    assert tagged == release
    assert {"fct_orders", "stg_shop__orders", "release/green_promoted"} <= {key.to_user_string() for key in tagged}


def test_snapshot_pools_have_limit_one_from_the_chart(defs):
    pools = {
        node.key.to_user_string(): node.pools
        for node in defs.resolve_asset_graph().asset_nodes
        if node.key.to_user_string().startswith("snap_")
    }
    assert pools == {
        "snap_customers": {"sales-snapshots"},
        "snap_orders": {"sales-snapshots"},
        "snap_products": {"inventory-snapshots"},
        "snap_inventory_levels": {"inventory-snapshots"},
    }
    # The example's pools are not listed in the chart (it names no project's pools): its default
    # limit applies, and it is 1.
    pools_values = chart_values()["concurrency"]["pools"]
    limits = pool_limits()
    for pool in ("sales-snapshots", "inventory-snapshots"):
        assert limits.get(pool, pools_values["defaultLimit"]) == 1, pool


def test_hourly_tests_job_runs_only_tagged_tests_against_green(defs, warehouse, instance):
    load_raw(warehouse)
    assert run_job(defs, "release_job", instance).success

    result = run_job(defs, "hourly_tests_job", instance)

    assert result.success
    messages = [
        event.message
        for event in instance.all_logs(result.run_id)
        if event.message and "tag:hourly_tests" in event.message
    ]
    assert messages, "the op did not run dbt with tag:hourly_tests"
    schedule = defs.resolve_schedule_def("hourly_tests_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 * * * *", "UTC")


def test_missing_warehouse_variable_is_named(monkeypatch):
    monkeypatch.delenv("DBT_PG_HOST", raising=False)
    monkeypatch.setenv("DBT_TARGET", "postgres")
    with pytest.raises(MissingWarehouseSetting, match="DBT_PG_HOST"):
        postgres_conninfo()


@pytest.mark.parametrize(
    "target, missing",
    [("postgres", "DBT_PG_HOST"), ("snowflake", "SNOWFLAKE_ACCOUNT")],
)
def test_dbt_names_the_missing_variable_of_the_chosen_target(target, missing):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_PG_", "SNOWFLAKE_"))}
    env["DBT_TARGET"] = target
    result = subprocess.run(
        [
            "dbt",
            "parse",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            "target/missing-env",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert f"Env var required but not provided: '{missing}'" in result.stdout + result.stderr


def test_dbt_selection_of_a_release_model_takes_the_whole_release(defs):
    """A selection that touches one release model takes every release model and both release
    steps: a release is promoted only whole, never a mix of two releases' tables."""
    from dagster_code.local.materialize import selected_asset_keys

    release = {key.to_user_string() for key in defs.resolve_job_def("release_job").asset_layer.executable_asset_keys}
    keys = {key.to_user_string() for key in selected_asset_keys(defs, "+fct_orders")}
    assert keys == release
    assert {"stg_shop__orders", "dim_products", "release/blue_prepared", "release/green_promoted"} <= keys
    snapshot_only = {key.to_user_string() for key in selected_asset_keys(defs, "snap_customers")}
    assert snapshot_only == {"snap_customers"}


def test_dg_check_defs_passes(defs, warehouse, tmp_path):
    # `dg` parses the dbt project on load (prepare_if_dev), rewriting its target/: in a copy of the
    # project, so that it cannot rewrite the manifest other tests (other xdist workers) are loading.
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "target", "logs")
    project.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", project / "pyproject.toml")
    for folder in ("dagster_code", "dbt_project"):
        shutil.copytree(REPO_ROOT / folder, project / folder, ignore=ignore)
    result = subprocess.run(
        ["dg", "check", "defs"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project), "DBT_PROJECT_DIR": str(project / "dbt_project")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr
