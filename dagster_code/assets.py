"""The project's dbt assets: one `@dbt_assets` for the unpartitioned models and seeds, one per
snapshot pool, one per partitioned model. Every step runs `dbt build` (models and their tests
in one invocation) with the run's dbt vars."""

from collections.abc import Iterator, Mapping

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from dagster_code.dbt_cli import stream_dbt_build
from dagster_code.nodes import PartitionedModel, ProjectPlan, SnapshotPool
from dagster_code.release import refuse_release_of_two_code_versions
from dagster_code.release_vars import run_dbt_vars
from dagster_code.translator import ProjectDbtTranslator

# The unpartitioned models' op; step keys are op names, and runs are read by them.
MODELS_OP = "dbt_models"
# dbt's time format for --event-time-* and the window vars.
DBT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _selection(manifest, unique_ids) -> str:
    """A dbt selection of exactly these nodes, by fully qualified name."""
    return " ".join("fqn:" + ".".join(manifest["nodes"][unique_id]["fqn"]) for unique_id in sorted(unique_ids))


def build_dbt_assets(
    plan: ProjectPlan,
    project: DbtProject,
    release_code_versions: Mapping[dg.AssetKey, str | None],
    release_fingerprint: Mapping[str, str],
) -> list[dg.AssetsDefinition]:
    """`release_code_versions`: every release model's code version (release.release_code_versions);
    `release_fingerprint`: the release's (release_fingerprint.release_fingerprint)."""
    manifest = plan.manifest
    translator = ProjectDbtTranslator(plan)
    with_release_id = plan.release is not None

    def dbt_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
        # A retry of a release that runs newer code than its parent stops before dbt changes
        # anything: its new SQL could fail on what the parent built, or build on stale tables. Any
        # run that builds a release model is one (the release job, the UI's Materialize of the
        # release, a re-execution of either).
        if release_code_versions.keys() & context.selected_asset_keys:
            refuse_release_of_two_code_versions(
                context, plan.release.job_name, release_code_versions, release_fingerprint
            )
        return run_dbt_vars(context.run, plan.config.vars_from_run_tags, with_release_id)

    excluded = [unique_id for pool in plan.snapshot_pools for unique_id in pool.unique_ids] + list(plan.partitioned)

    @dbt_assets(
        manifest=manifest,
        project=project,
        exclude=_selection(manifest, excluded) or None,
        name=MODELS_OP,
        dagster_dbt_translator=translator,
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator:
        yield from stream_dbt_build(context, dbt, [], dbt_vars(context))

    def snapshots(pool: SnapshotPool) -> dg.AssetsDefinition:
        # Concurrent runs of one snapshot can write duplicate current rows (dbt-core#4661):
        # each pool's limit (1) is in the chart's values.
        @dbt_assets(
            manifest=manifest,
            project=project,
            select=_selection(manifest, pool.unique_ids),
            name=pool.op_name,
            pool=pool.pool,
            dagster_dbt_translator=translator,
        )
        def dbt_snapshots(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator:
            yield from stream_dbt_build(context, dbt, [], dbt_vars(context))

        return dbt_snapshots

    def partitioned(model: PartitionedModel) -> dg.AssetsDefinition:
        @dbt_assets(
            manifest=manifest,
            project=project,
            select=_selection(manifest, [model.unique_id]),
            name=model.op_name,
            partitions_def=model.partitions_def,
            backfill_policy=model.backfill_policy,
            dagster_dbt_translator=translator,
        )
        def dbt_partitioned(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator:
            # A single-run backfill passes the whole range: dbt splits it into its batches.
            window = context.partition_time_window
            start, end = window.start.strftime(DBT_TIME_FORMAT), window.end.strftime(DBT_TIME_FORMAT)
            if model.microbatch:
                # dbt's batch engine filters the model; vars would leave it building every batch.
                args, window_vars = ["--event-time-start", start, "--event-time-end", end], {}
            else:
                args, window_vars = [], {model.start_var: start, model.end_var: end}
            yield from stream_dbt_build(context, dbt, args, {**dbt_vars(context), **window_vars})

        return dbt_partitioned

    return [
        dbt_models,
        *(snapshots(pool) for pool in plan.snapshot_pools),
        *(partitioned(model) for model in plan.partitioned.values()),
    ]
