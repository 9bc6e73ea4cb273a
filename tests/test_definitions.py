"""The code location's definitions: groups, jobs, pools and the settings it shares with the
chart; and clear errors for missing settings."""

import os
import shutil
import subprocess

import dagster as dg
import pytest

from dagster_code.local.instance import chart_values, pool_limits
from dagster_code.retries import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_STRATEGY,
    retry_tags,
    retryable_after_lost_connection,
)
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


def test_every_asset_job_carries_the_retry_tags_and_the_lost_connection_hook(defs):
    for name in ASSET_JOBS:
        assert retryable_after_lost_connection in defs.resolve_job_def(name).hook_defs, name
        tags = defs.resolve_job_def(name).tags
        assert tags["dagster/retry_strategy"] == "FROM_ASSET_FAILURE", name
        assert tags["dagster/retry_on_asset_or_op_failure"] == "false", name
        assert tags["dagster/max_retries"] == str(DEFAULT_MAX_RETRIES), name


def test_retry_defaults_equal_the_chart_defaults():
    retries = chart_values()["dagsterDaemon"]["runRetries"]
    assert retries["strategy"] == DEFAULT_RETRY_STRATEGY
    assert retries["maxRetries"] == DEFAULT_MAX_RETRIES


def test_releases_run_one_at_a_time(defs):
    """release_job's tag matches a run-tag limit of 1 in the chart's instance config."""
    tags = defs.resolve_job_def("release_job").tags
    limits = chart_values()["concurrency"]["runs"]["tagConcurrencyLimits"]
    assert [limit for limit in limits if tags.get(limit["key"]) == limit.get("value") and limit["limit"] == 1], (
        f"no run-tag limit of 1 matches release_job's tags {tags}"
    )


def test_unknown_retry_strategy_is_refused_with_the_variable_name(monkeypatch):
    monkeypatch.setenv("DAGSTER_RUN_RETRY_STRATEGY", "FROM_SCRATCH")
    with pytest.raises(ValueError, match="DAGSTER_RUN_RETRY_STRATEGY is 'FROM_SCRATCH'"):
        retry_tags()


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


def test_dbt_selection_picks_assets_and_brings_the_release_steps(defs):
    from dagster_code.local.materialize import selected_asset_keys

    keys = {key.to_user_string() for key in selected_asset_keys(defs, "+fct_orders")}
    assert keys == {
        "stg_shop__customers",
        "stg_shop__orders",
        "stg_shop__products",
        "int_orders_enriched",
        "fct_orders",
        "release/blue_prepared",
        "release/green_promoted",
    }
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
