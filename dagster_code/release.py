"""Blue/green releases that stay correct when Dagster retries a run from asset failure.

The guide clones green into blue in dbt's `on-run-start` and swaps in `on-run-end`. Under a
FROM_ASSET_FAILURE retry both hooks misfire: the retry's `on-run-start` clones green over
the blue tables the parent run already rebuilt, and its `on-run-end` sees only the retry's
own nodes, so it promotes a partial release. Here the two hooks are Dagster assets instead,
calling the macros of the dbt package this project ships (dbt_blue_green/):

- `release/blue_prepared` clones green into blue before any release model builds. The
  retry skips it because it was materialized, so the parent's blue tables survive.
- `release/green_promoted` depends on every promoted model, so it runs only after every model
  and dbt test of the release succeeded, in whichever run of the group they ran. It promotes
  them all in one transaction (on PostgreSQL) and records the release id in
  `green._release_log` inside that same transaction: a promotion replayed after a crash
  finds its id there and does nothing, so each release is promoted exactly once.
"""

import json

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_code.dbt_cli import run_dbt
from dagster_code.nodes import ReleasePlan
from dagster_code.release_vars import release_id
from dagster_code.translator import BLUE_PREPARED_KEY, GREEN_PROMOTED_KEY

RELEASE_GROUP = "release"


def build_release_assets(release: ReleasePlan, promoted_keys: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    tables = sorted(release.promoted_tables.values())

    def operation_args(context: dg.AssetExecutionContext) -> str:
        return json.dumps({"release_id": release_id(context.run), "tables": tables})

    @dg.asset(key=BLUE_PREPARED_KEY, group_name=RELEASE_GROUP, kinds={"dbt"})
    def blue_prepared(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> dg.MaterializeResult:
        """Blue holds a copy of green's promoted tables, so a release starts from what consumers see."""
        run_dbt(context, dbt, ["run-operation", "clone_green_to_blue", "--args", operation_args(context)])
        return dg.MaterializeResult(metadata={"release_id": release_id(context.run)})

    @dg.asset(key=GREEN_PROMOTED_KEY, group_name=RELEASE_GROUP, deps=promoted_keys, kinds={"dbt"})
    def green_promoted(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> dg.MaterializeResult:
        """Every promoted table of the release, from blue to green at once, exactly once."""
        run_dbt(context, dbt, ["run-operation", "promote_blue_to_green", "--args", operation_args(context)])
        return dg.MaterializeResult(metadata={"release_id": release_id(context.run)})

    return [blue_prepared, green_promoted]
