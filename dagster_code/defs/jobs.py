"""The project's jobs. Every job that builds assets carries the run-retry tags."""

import dagster as dg

from dagster_code.defs.app_events.assets import app_events_incremental, app_events_microbatch
from dagster_code.retries import retry_tags
from dagster_code.translator import BLUE_PREPARED_KEY

# Releases of the blue/green schemas run one at a time (a run-tag concurrency limit in the
# instance config): two releases interleaving would promote each other's blue tables.
RELEASE_TAGS = {"analytics/release": "blue-green"}

release_job = dg.define_asset_job(
    "release_job",
    selection=dg.AssetSelection.assets(BLUE_PREPARED_KEY).downstream(),
    tags={**retry_tags(), **RELEASE_TAGS},
    description="Prepare blue, build and test every release model in it, promote to green.",
)

raw_data_job = dg.define_asset_job(
    "raw_data_job",
    selection=dg.AssetSelection.groups("raw"),
    tags=retry_tags(),
    description="Generate the raw tables the dbt sources read.",
)

sales_snapshots_job = dg.define_asset_job(
    "sales_snapshots_job",
    selection=dg.AssetSelection.groups("sales_snapshots"),
    tags=retry_tags(),
)

inventory_snapshots_job = dg.define_asset_job(
    "inventory_snapshots_job",
    selection=dg.AssetSelection.groups("inventory_snapshots"),
    tags=retry_tags(),
)

app_events_incremental_job = dg.define_asset_job(
    "app_events_incremental_job",
    selection=dg.AssetSelection.assets(app_events_incremental),
    tags=retry_tags(),
)

app_events_microbatch_job = dg.define_asset_job(
    "app_events_microbatch_job",
    selection=dg.AssetSelection.assets(app_events_microbatch),
    tags=retry_tags(),
)
