"""Blue/green releases that stay correct when Dagster retries a run from asset failure.

The guide clones green into blue in dbt's `on-run-start` and swaps in `on-run-end`. Under a
FROM_ASSET_FAILURE retry both hooks misfire: the retry's `on-run-start` clones green over
the blue tables the parent run already rebuilt, and its `on-run-end` sees only the retry's
own nodes, so it promotes a partial release. Here the two hooks are Dagster assets instead:

- `release/blue_prepared` clones green into blue before any release model builds. The
  retry skips it because it was materialized, so the parent's blue tables survive.
- `release/green_promoted` depends on every mart, so it runs only after every model and
  dbt test of the release succeeded, in whichever run of the group they ran. It promotes
  all marts in one transaction (on PostgreSQL) and records the release id in
  `green._release_log` inside that same transaction: a promotion replayed after a crash
  finds its id there and does nothing, so each release is promoted exactly once.
"""


import json

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_code.dbt_cli import run_dbt
from dagster_code.project import dbt_manifest
from dagster_code.release_vars import release_id
from dagster_code.translator import BLUE_PREPARED_KEY, GREEN_PROMOTED_KEY, marts

RELEASE_GROUP = "release"


def _release_marts() -> dict[dg.AssetKey, str]:
    return marts(dbt_manifest())


def _operation_args(context: dg.AssetExecutionContext) -> str:
    return json.dumps(
        {"release_id": release_id(context.run), "marts": sorted(_release_marts().values())}
    )


@dg.asset(key=BLUE_PREPARED_KEY, group_name=RELEASE_GROUP, kinds={"dbt"})
def blue_prepared(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> dg.MaterializeResult:
    """Blue holds a copy of green's marts, so a release starts from what consumers see."""
    run_dbt(context, dbt, ["run-operation", "clone_green_to_blue", "--args", _operation_args(context)])
    return dg.MaterializeResult(metadata={"release_id": release_id(context.run)})


@dg.asset(
    key=GREEN_PROMOTED_KEY, group_name=RELEASE_GROUP, deps=list(_release_marts()), kinds={"dbt"}
)
def green_promoted(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> dg.MaterializeResult:
    """Every mart of the release, promoted from blue to green at once, exactly once."""
    run_dbt(context, dbt, ["run-operation", "promote_blue_to_green", "--args", _operation_args(context)])
    return dg.MaterializeResult(metadata={"release_id": release_id(context.run)})
