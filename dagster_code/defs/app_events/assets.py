"""Daily-partitioned app events: a regular incremental model and a microbatch model.

They differ in who filters rows. The regular incremental model filters with
`var("start_date")`/`var("end_date")` inside `is_incremental()`, so the partition window
goes in `--vars`. The microbatch model is filtered by dbt's batch engine, which only
`--event-time-start/--event-time-end` drive: `--vars` would leave it processing every batch
from `begin` to now. Dagster's partitions must also line up with the model's batches: the
same unit as `batch_size` and the same start as `begin`. The guide only warns about that;
here the definitions refuse to load when they disagree.
"""


import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_code import raw_data
from dagster_code.project import dbt_manifest
from dagster_code.translator import ProjectDbtTranslator

INCREMENTAL_MODEL = "fct_app_events"
MICROBATCH_MODEL = "fct_app_events_microbatch"
# Partitions start on the first day of generated app events; the microbatch model's
# `begin` must be the same day (checked below).
APP_EVENTS_START = raw_data.EVENTS_START.isoformat()
DBT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

app_events_daily = dg.DailyPartitionsDefinition(start_date=APP_EVENTS_START)

# The partition schedule that yields one Dagster partition per dbt batch.
CRON_BY_BATCH_SIZE = {
    "hour": "0 * * * *",
    "day": "0 0 * * *",
    "month": "0 0 1 * *",
    "year": "0 0 1 1 *",
}


class MicrobatchPartitionsMismatch(dg.DagsterInvalidDefinitionError):
    pass


def _model_node(manifest: Mapping[str, Any], model_name: str) -> Mapping[str, Any]:
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["name"] == model_name:
            return node
    raise MicrobatchPartitionsMismatch(f"dbt model '{model_name}' is not in the manifest")


def _as_utc(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def check_microbatch_partitions(
    manifest: Mapping[str, Any],
    model_name: str,
    partitions_def: dg.TimeWindowPartitionsDefinition,
) -> None:
    """Raises, naming the model, unless the partitions match its `batch_size` and `begin`."""
    config = _model_node(manifest, model_name)["config"]
    batch_size, begin = config.get("batch_size"), config.get("begin")
    expected_cron = CRON_BY_BATCH_SIZE.get(batch_size)
    if expected_cron is None or partitions_def.cron_schedule != expected_cron:
        raise MicrobatchPartitionsMismatch(
            f"dbt model '{model_name}' has batch_size='{batch_size}', so its Dagster partitions "
            f"must follow the schedule '{expected_cron}' (one partition per batch), not "
            f"'{partitions_def.cron_schedule}'"
        )
    if _as_utc(begin) != _as_utc(partitions_def.start):
        raise MicrobatchPartitionsMismatch(
            f"dbt model '{model_name}' begins at {begin}, but its Dagster partitions start at "
            f"{partitions_def.start:%Y-%m-%d %H:%M:%S}: make them equal so backfills line up "
            "with dbt's batches"
        )


def build_incremental_assets(manifest: Mapping[str, Any]) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=manifest,
        select=INCREMENTAL_MODEL,
        partitions_def=app_events_daily,
        dagster_dbt_translator=ProjectDbtTranslator(),
        name="app_events_incremental",
    )
    def app_events_incremental(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        window = context.partition_time_window
        dbt_vars = {
            "start_date": window.start.strftime(DBT_TIME_FORMAT),
            "end_date": window.end.strftime(DBT_TIME_FORMAT),
        }
        yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()

    return app_events_incremental


def build_microbatch_assets(
    manifest: Mapping[str, Any], partitions_def: dg.TimeWindowPartitionsDefinition
) -> dg.AssetsDefinition:
    check_microbatch_partitions(manifest, MICROBATCH_MODEL, partitions_def)

    @dbt_assets(
        manifest=manifest,
        select=MICROBATCH_MODEL,
        partitions_def=partitions_def,
        dagster_dbt_translator=ProjectDbtTranslator(),
        name="app_events_microbatch",
    )
    def app_events_microbatch(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        window = context.partition_time_window
        yield from dbt.cli(
            [
                "build",
                "--event-time-start", window.start.strftime(DBT_TIME_FORMAT),
                "--event-time-end", window.end.strftime(DBT_TIME_FORMAT),
            ],
            context=context,
        ).stream()

    return app_events_microbatch


app_events_incremental = build_incremental_assets(dbt_manifest())
app_events_microbatch = build_microbatch_assets(dbt_manifest(), app_events_daily)
