"""The example project on the Snowflake stand-in (tests/snowflake/), through the platform's own
Dagster jobs and dbt-snowflake, as a team on Snowflake would run it: two releases, a snapshot
and the incremental and microbatch models on their second run, and a release whose dbt test fails.

The Dagster instance is the suite's PostgreSQL one; only the warehouse is the stand-in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
import snowflake.connector
from dagster_dbt import DbtProject
from example_extras import raw_data
from example_extras.raw_data import generator

from dagster_code.project_definitions import build_definitions
from tests.conftest import DBT_PROJECT_DIR, REPO_ROOT
from tests.snowflake.harness import connect, snowflake_env, standin_server
from tests.snowflake.standin import SnowflakeStandIn
from tests.support import MARTS, run_job

pytestmark = [
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
    pytest.mark.filterwarnings("ignore:The 'insecure_mode' connection property:DeprecationWarning"),
]

DATABASE = "ANALYTICS"
DAY = "2024-01-03"
DBT_TIMEOUT_SECONDS = 300
THREADS = 2


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SnowflakeStandIn, dict[str, Any]]]:
    with standin_server() as served:
        yield served


@pytest.fixture(scope="module")
def project(server: tuple[SnowflakeStandIn, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> DbtProject:
    """A copy of the example project, parsed for the `snowflake` target as an image build would."""
    root = tmp_path_factory.mktemp("snowflake-example")
    project_dir = root / DBT_PROJECT_DIR.name
    shutil.copytree(DBT_PROJECT_DIR, project_dir, ignore=shutil.ignore_patterns("target", "dbt_packages", "logs"))
    # packages.yml names the platform's release package as ../dagster_code/dbt_blue_green.
    (root / "dagster_code").symlink_to(REPO_ROOT / "dagster_code")
    env = {**os.environ, **snowflake_env(server[1], DATABASE, THREADS)}
    for command in ("deps", "parse"):
        subprocess.run(
            ["dbt", command, "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)],
            env=env,
            check=True,
            capture_output=True,
            timeout=DBT_TIMEOUT_SECONDS,
        )
    return DbtProject(project_dir=project_dir, profiles_dir=project_dir, target="snowflake")


@pytest.fixture
def warehouse(
    server: tuple[SnowflakeStandIn, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[snowflake.connector.cursor.SnowflakeCursor]:
    """An empty database on the stand-in holding the example's raw data; a cursor on it."""
    connect_kwargs = server[1]
    for name, value in snowflake_env(connect_kwargs, DATABASE, THREADS).items():
        monkeypatch.setenv(name, value)
    conn = connect(connect_kwargs, DATABASE)
    cursor = conn.cursor()
    # Empty (fakesnow cannot drop a database): every schema the previous test made, dropped.
    cursor.execute(f"create database if not exists {DATABASE}")
    cursor.execute(f"use database {DATABASE}")
    for (schema,) in rows(cursor, "select schema_name from information_schema.schemata where schema_name <> 'PUBLIC'"):
        if schema != "INFORMATION_SCHEMA":
            cursor.execute(f'drop schema "{schema}" cascade')
    load_raw(cursor, raw_data.generate(seed=42, size=1))
    yield cursor
    conn.close()


def load_raw(cursor: Any, data: raw_data.RawData) -> None:
    cursor.execute("create schema raw")
    for table, ddl in generator.TABLE_DDL.items():
        columns = generator.TABLE_COLUMNS[table]
        cursor.execute(f"create table raw.{table} ({ddl})")
        placeholders = ", ".join(["%s"] * len(columns))
        cursor.executemany(
            f"insert into raw.{table} ({', '.join(columns)}) values ({placeholders})", data.tables[table]
        )


def rows(cursor: Any, sql: str, params: tuple = ()) -> list[tuple]:
    """The rows, sorted (compared as sets of rows)."""
    cursor.execute(sql, params)
    return sorted(cursor.fetchall())


def green_release_ids(cursor: Any) -> dict[str, set[str]]:
    return {mart: {r for (r,) in rows(cursor, f"select distinct release_id from green.{mart}")} for mart in MARTS}


def green_contents(cursor: Any) -> dict[str, list[tuple]]:
    return {mart: rows(cursor, f"select * from green.{mart}") for mart in MARTS}


def release_log(cursor: Any) -> list[str]:
    cursor.execute("select release_id from green._release_log order by promoted_at")
    return [release_id for (release_id,) in cursor.fetchall()]


def assert_succeeded(*results: dg.ExecuteInProcessResult) -> None:
    failures = {
        result.dagster_run.job_name: [e.step_failure_data.error.message for e in result.get_step_failure_events()]
        for result in results
        if not result.success
    }
    assert not failures, failures


@pytest.fixture
def defs(project: DbtProject) -> dg.Definitions:
    return build_definitions(project)


def test_two_releases_snapshots_and_second_incremental_runs_on_snowflake(defs, warehouse, instance):
    summary = raw_data.summarize(raw_data.generate(seed=42, size=1))

    first = run_job(defs, "release_job", instance)
    snapshots_first = run_job(defs, "sales_snapshots_job", instance)
    incremental_first = run_job(defs, "app_events_incremental_job", instance, partition_key=DAY)
    microbatch_first = run_job(defs, "app_events_microbatch_job", instance, partition_key=DAY)
    assert_succeeded(first, snapshots_first, incremental_first, microbatch_first)

    # Source changes: an email (the snapshot opens a version), an event of DAY (the second
    # incremental and microbatch runs take it over), an order's price (the second release shows it).
    ((customer_id,),) = rows(warehouse, "select min(customer_id) from raw.customers")
    warehouse.execute(
        "update raw.customers set email = 'changed@example.com', updated_at = dateadd(day, 1, updated_at)"
        " where customer_id = %s",
        (customer_id,),
    )
    ((event_id,),) = rows(
        warehouse, "select min(event_id) from raw.app_events where cast(event_time as date) = %s", (DAY,)
    )
    ((old_type,),) = rows(warehouse, "select event_type from raw.app_events where event_id = %s", (event_id,))
    # Another accepted value: the release's staging tests check event types.
    new_type = "purchase" if old_type != "purchase" else "page_view"
    warehouse.execute("update raw.app_events set event_type = %s where event_id = %s", (new_type, event_id))
    events_of_day = rows(warehouse, "select count(*) from raw.app_events where cast(event_time as date) = %s", (DAY,))

    second = run_job(defs, "release_job", instance)
    snapshots_second = run_job(defs, "sales_snapshots_job", instance)
    incremental_second = run_job(defs, "app_events_incremental_job", instance, partition_key=DAY)
    microbatch_second = run_job(defs, "app_events_microbatch_job", instance, partition_key=DAY)
    assert_succeeded(second, snapshots_second, incremental_second, microbatch_second)

    # The release: every green mart from the second release, both releases logged once each,
    # revenue exactly the generated total (NUMBER sums are exact, as on Snowflake).
    assert green_release_ids(warehouse) == {mart: {second.run_id} for mart in MARTS}
    assert release_log(warehouse) == [first.run_id, second.run_id]
    for table, column in (
        ("fct_orders", "revenue"),
        ("dim_customers", "lifetime_revenue"),
        ("dim_products", "revenue"),
    ):
        assert rows(warehouse, f"select sum({column}) from green.{table}") == [(Decimal(summary["total_revenue"]),)]
    # Provenance, as on PostgreSQL: the code version of each green table's model.
    asset_graph = defs.resolve_asset_graph()
    ((built_by,),) = rows(warehouse, "select built_by from green._release_log where release_id = %s", (second.run_id,))
    assert {mart: by["code_version"] for mart, by in json.loads(built_by).items()} == {
        mart: asset_graph.get(dg.AssetKey(mart)).code_version for mart in MARTS
    }

    # The snapshot closed the old version and opened one with the new email.
    versions = rows(
        warehouse,
        "select email, dbt_valid_to is null from snapshots.snap_customers where customer_id = %s",
        (customer_id,),
    )
    assert len(versions) == 2 and ("changed@example.com", True) in versions, versions
    # Incremental and microbatch, second run of DAY: the changed event replaced, no duplicates.
    for table in ("fct_app_events", "fct_app_events_microbatch"):
        assert rows(warehouse, f"select event_type from events.{table} where event_id = %s", (event_id,)) == [
            (new_type,)
        ], table
        day_rows = rows(
            warehouse, f"select count(*), count(distinct event_id) from events.{table} where event_date = %s", (DAY,)
        )
        assert day_rows == [(events_of_day[0][0], events_of_day[0][0])], table


def test_failing_dbt_test_leaves_green_unchanged_on_snowflake(defs, warehouse, instance):
    published = run_job(defs, "release_job", instance)
    assert published.success
    green_before = green_contents(warehouse)
    # A negative quantity: every model builds, then the mart test on fct_orders' revenue fails.
    warehouse.execute(
        "update raw.orders set quantity = -quantity where order_id ="
        " (select min(order_id) from raw.orders where status <> 'returned')"
    )

    failed = run_job(defs, "release_job", instance)

    assert not failed.success
    failed_checks = {c.asset_key.to_user_string() for c in failed.get_asset_check_evaluations() if not c.passed}
    assert "fct_orders" in failed_checks
    assert green_contents(warehouse) == green_before
    assert green_release_ids(warehouse) == {mart: {published.run_id} for mart in MARTS}
    assert release_log(warehouse) == [published.run_id]
