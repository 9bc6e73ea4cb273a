"""The platform on dbt projects other than the example: a minimal one that configures nothing, and
a configured one (tests/dbt_projects/acme: hourly and monthly microbatch models, an opted-in
regular incremental model, snapshots in two pools, a release of three marts, a package vendored
under dbt_packages/). Definitions load, and a full build succeeds on the real PostgreSQL."""

import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from dagster_dbt import DbtProject

from dagster_code.project_definitions import build_definitions
from dagster_code.run_coordinator import RELEASE_TAG, RELEASE_TAG_VALUE
from dagster_code.translator import GREEN_PROMOTED_KEY
from tests.conftest import REPO_ROOT
from tests.support import parsed_project, query, run_job, table_exists

PROJECTS = Path(__file__).parent / "dbt_projects"
BLUE_GREEN_PACKAGE = REPO_ROOT / "dagster_code" / "dbt_blue_green"


def prepared_project(name: str, tmp_path: Path, edit: Callable[[Path], None] | None = None) -> DbtProject:
    """A copy of the project, its packages in dbt_packages/ as `dbt deps` leaves them, `edit`ed
    (given the copy's folder), parsed."""
    project_dir = tmp_path / name
    shutil.copytree(PROJECTS / name, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    if (project_dir / "packages.yml").exists():
        shutil.copytree(BLUE_GREEN_PACKAGE, project_dir / "dbt_packages" / "dagster_blue_green")
    if edit is not None:
        edit(project_dir)
    return parsed_project(project_dir)


def groups_of(defs: dg.Definitions) -> dict[str, str]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}


def build_all_unpartitioned(defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[str]):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey.from_user_string(key) for key in keys], raise_on_error=False
    )


def test_minimal_project_loads_with_defaults_and_builds(warehouse, instance, tmp_path):
    defs = build_definitions(prepared_project("minimal", tmp_path))

    assert groups_of(defs) == {"countries": "dbt_seeds", "stg_countries": "staging", "country_count": "dbt_models"}
    assert not defs.jobs and not defs.schedules
    result = build_all_unpartitioned(defs, instance, ["countries", "stg_countries", "country_count"])
    assert result.success
    assert query(warehouse, "select countries from public.country_count") == [(2,)]


@pytest.fixture
def acme(warehouse, tmp_path) -> dg.Definitions:
    return build_definitions(prepared_project("acme", tmp_path))


def test_configured_project_derives_groups_pools_partitions_and_release(acme):
    groups = groups_of(acme)
    assert groups == {
        "countries_seed": "dbt_seeds",
        "customers_seed": "dbt_seeds",
        "events_seed": "dbt_seeds",
        "stg_customers": "staging",
        "stg_events": "staging",
        "dim_customers": "reporting",
        "fct_customer_events": "reporting",
        "mart_countries": "reporting",
        "events_hourly": "events",
        "events_monthly": "events",
        "events_windowed": "events",
        "snap_customers": "finance",
        "snap_countries": "finance",
        "snap_events": "ops",
        "utils_calendar": "acme_utils",
        "release/blue_prepared": "release",
        "release/green_promoted": "release",
    }
    pools = {
        assets_def.node_def.name: assets_def.node_def.pool
        for assets_def in acme.resolve_asset_graph().assets_defs
        if assets_def.node_def.name.startswith("dbt_snapshots")
    }
    assert pools == {"dbt_snapshots_finance": "finance-snapshots", "dbt_snapshots_ops": "ops-snapshots"}
    graph = acme.resolve_asset_graph()
    # Partitions from each microbatch model's begin and batch_size; from meta for the opted-in one.
    # Backfills: a whole range in one run for microbatch models, one partition per run otherwise.
    expected = {
        "events_hourly": ("0 * * * *", "2024-01-01-00:00", None),
        "events_monthly": ("0 0 1 * *", "2024-01-01", None),
        "events_windowed": ("0 0 * * *", "2024-01-01", 1),
    }
    for name, (cron, first_key, partitions_per_run) in expected.items():
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def.cron_schedule == cron, name
        assert node.partitions_def.get_first_partition_key() == first_key, name
        assert node.backfill_policy.max_partitions_per_run == partitions_per_run, name
    release = acme.resolve_job_def("release_job")
    assert {key.to_user_string() for key in release.asset_layer.selected_asset_keys} == {
        "release/blue_prepared",
        "stg_customers",
        "stg_events",
        "dim_customers",
        "fct_customer_events",
        "mart_countries",
        "release/green_promoted",
    }
    assert all(
        release_asset.tags.get(RELEASE_TAG) == RELEASE_TAG_VALUE
        for release_asset in acme.resolve_asset_graph().asset_nodes
        if release_asset.key in release.asset_layer.selected_asset_keys
    )
    schedule = acme.resolve_schedule_def("nightly_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "0 3 * * *",
        "Europe/Berlin",
        "nightly_job",
    )


def test_configured_project_full_build(acme, warehouse, instance):
    seeds_and_package = build_all_unpartitioned(
        acme, instance, ["countries_seed", "customers_seed", "events_seed", "utils_calendar"]
    )
    assert seeds_and_package.success

    assert run_job(acme, "release_job", instance).success
    for mart in ("dim_customers", "fct_customer_events", "mart_countries"):
        assert table_exists(warehouse, "green", mart), mart
    assert query(warehouse, "select count(*) from green._release_log") == [(1,)]
    assert run_job(acme, "finance_snapshots_job", instance).success
    assert run_job(acme, "ops_snapshots_job", instance).success
    assert run_job(acme, "events_monthly_job", instance, partition_key="2024-01-01").success
    assert run_job(acme, "events_windowed_job", instance, partition_key="2024-01-02").success
    assert run_job(acme, "nightly_job", instance).success
    # A range of hourly partitions is one run and one dbt invocation (single-run backfill).
    hourly = run_job(
        acme,
        "events_hourly_job",
        instance,
        tags={
            "dagster/asset_partition_range_start": "2024-01-01-00:00",
            "dagster/asset_partition_range_end": "2024-01-01-05:00",
        },
    )
    assert hourly.success
    assert query(warehouse, "select event_id from events.events_hourly order by 1") == [(1,), (2,)]
    assert query(warehouse, "select count(*) from snapshots.snap_events") == [(4,)]


def test_release_retried_after_a_seed_changed_is_refused_naming_the_seed(acme, warehouse, instance, tmp_path):
    """A seed is part of the code deployed: its new contents, loaded between a stopped release and
    its retry, would reach the models the retry builds beside those the parent built from the old."""
    seeds = build_all_unpartitioned(acme, instance, ["countries_seed", "customers_seed", "events_seed"])
    assert seeds.success
    release_job = acme.resolve_job_def("release_job")
    built_keys = set(release_job.asset_layer.executable_asset_keys) - {GREEN_PROMOTED_KEY}
    parent = release_job.execute_in_process(instance=instance, asset_selection=list(built_keys), raise_on_error=False)
    assert parent.success

    def add_a_customer(project_dir: Path) -> None:
        seed_file = project_dir / "seeds" / "customers_seed.csv"
        seed_file.write_text(seed_file.read_text() + "99,Late,FR\n")

    retry = (
        build_definitions(prepared_project("acme", tmp_path / "next", edit=add_a_customer))
        .resolve_job_def("release_job")
        .execute_in_process(
            instance=instance,
            asset_selection=[GREEN_PROMOTED_KEY],
            tags={"dagster/root_run_id": parent.run_id, "dagster/parent_run_id": parent.run_id},
            raise_on_error=False,
        )
    )

    assert not retry.success
    (failure,) = [e for e in retry.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == "release__green_promoted"
    message = failure.step_failure_data.user_failure_data.description
    assert "changed since the release started: seed 'customers_seed' contents " in message, message
    assert "stg_customers: built by code version" in message, message
    assert not table_exists(warehouse, "green", "mart_countries")
