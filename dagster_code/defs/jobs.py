"""The project's jobs. Every job that builds assets carries the run-retry tags and the hook that
makes a lost connection retryable."""

import dagster as dg

from dagster_code.defs.app_events.assets import app_events_incremental, app_events_microbatch
from dagster_code.retries import retry_tags, retryable_after_lost_connection
from dagster_code.translator import BLUE_PREPARED_KEY


def retried_asset_job(name: str, selection: dg.AssetSelection, tags: dict[str, str] | None = None, **kwargs):
    return dg.define_asset_job(
        name, selection=selection, tags={**retry_tags(), **(tags or {})}, hooks={retryable_after_lost_connection}, **kwargs
    )


# Releases of the blue/green schemas run one at a time (a run-tag concurrency limit in the
# instance config): two releases interleaving would promote each other's blue tables.
RELEASE_TAGS = {"analytics/release": "blue-green"}

release_job = retried_asset_job(
    "release_job",
    selection=dg.AssetSelection.assets(BLUE_PREPARED_KEY).downstream(),
    tags=RELEASE_TAGS,
    description="Prepare blue, build and test every release model in it, promote to green.",
)

raw_data_job = retried_asset_job(
    "raw_data_job",
    selection=dg.AssetSelection.groups("raw"),
    description="Generate the raw tables the dbt sources read.",
)

sales_snapshots_job = retried_asset_job(
    "sales_snapshots_job",
    selection=dg.AssetSelection.groups("sales_snapshots"),
)

inventory_snapshots_job = retried_asset_job(
    "inventory_snapshots_job",
    selection=dg.AssetSelection.groups("inventory_snapshots"),
)

app_events_incremental_job = retried_asset_job(
    "app_events_incremental_job",
    selection=dg.AssetSelection.assets(app_events_incremental),
)

app_events_microbatch_job = retried_asset_job(
    "app_events_microbatch_job",
    selection=dg.AssetSelection.assets(app_events_microbatch),
)
