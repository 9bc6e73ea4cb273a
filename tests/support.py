"""Helpers the fast suite shares with the cluster suites and the benchmark (k8s_tests/ imports
this module; nothing there re-implements it): loading raw data, running jobs, reading and
resetting the warehouse's release schemas, and the example's marts. The one module for these:
add a warehouse helper here rather than beside a test."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import psycopg
from dagster_dbt import DbtProject
from example_extras import raw_data

GREEN = "green"
BLUE = "blue"
# Where dagster_blue_green's promotion parks the previous green tables while it swaps.
BLUE_SWAP = "blue_swap"
# Where dagster_blue_green's clone records, in blue, the release blue was prepared for.
RELEASE_PREPARED = "_release_prepared"
MARTS = ("dim_customers", "dim_products", "fct_orders", "mart_inventory_health")
# Columns that legitimately differ between two builds of the same data.
RUN_SPECIFIC_COLUMNS = ("release_id",)


def load_raw(conninfo: str, seed: int = 42, size: int = 1) -> raw_data.RawData:
    data = raw_data.generate(seed=seed, size=size)
    raw_data.load(conninfo, data)
    return data


def parsed_project(project_dir: Path) -> DbtProject:
    """A copy of a dbt project, parsed by dbt as the image build does (its manifest in target/)."""
    subprocess.run(
        ["dbt", "parse", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return DbtProject(project_dir=project_dir, profiles_dir=project_dir, target="postgres")


def run_job(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    tags: Mapping[str, str] | None = None,
    partition_key: str | None = None,
    run_config: Mapping | None = None,
) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance,
        tags=dict(tags or {}),
        partition_key=partition_key,
        run_config=dict(run_config or {}),
        raise_on_error=False,
    )


def query(conninfo: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(sql, params).fetchall()


def table_exists(conninfo: str, schema: str, table: str) -> bool:
    return query(conninfo, "select to_regclass(%s) is not null", (f"{schema}.{table}",))[0][0]


def table_contents(conninfo: str, schema: str, table: str, exclude=RUN_SPECIFIC_COLUMNS) -> list[tuple]:
    """Every row of a table, sorted, with columns in name order: comparable across builds."""
    columns = [
        name
        for (name,) in query(
            conninfo,
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s order by column_name",
            (schema, table),
        )
        if name not in exclude
    ]
    assert columns, f"{schema}.{table} does not exist"
    select = ", ".join(f'"{c}"' for c in columns)
    return sorted(query(conninfo, f'select {select} from "{schema}"."{table}"'), key=repr)


def schema_contents(conninfo: str, schema: str, tables=MARTS) -> dict[str, list[tuple]]:
    return {table: table_contents(conninfo, schema, table) for table in tables}


def green_release_ids(conninfo: str) -> dict[str, set[str]]:
    """The distinct release ids each green mart carries, read in ONE statement."""
    union = " union all ".join(f"select '{mart}' as mart, release_id from {GREEN}.{mart}" for mart in MARTS)
    rows = query(conninfo, f"select distinct mart, release_id from ({union}) marts")
    ids: dict[str, set[str]] = {mart: set() for mart in MARTS}
    for mart, release in rows:
        ids[mart].add(release)
    return ids


def reset_release_schemas(conninfo: str) -> None:
    """Drops green, blue and the swap schema: the warehouse as before any release."""
    with psycopg.connect(conninfo) as conn:
        for schema in (GREEN, BLUE, BLUE_SWAP):
            conn.execute(f"drop schema if exists {schema} cascade")


def release_log(conninfo: str) -> list[tuple]:
    return query(conninfo, f"select release_id, tables from {GREEN}._release_log order by promoted_at")


def materialized_keys_of_result(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {event.asset_key for event in result.get_asset_materialization_events()}
