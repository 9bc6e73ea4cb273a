"""The project's jobs. Every job that builds assets carries the hook that makes a lost connection
retryable; retry tags come to every run, of these jobs or any other, from the run coordinator."""

import json

import dagster as dg

from dagster_code.config import TestsSchedule
from dagster_code.dbt_cli import run_dbt
from dagster_code.nodes import ProjectPlan
from dagster_code.retries import retryable_after_lost_connection
from dagster_code.translator import BLUE_PREPARED_KEY, GREEN_PROMOTED_KEY

# The blue/green package's var: tagged tests read green, what consumers read, not blue.
TESTS_ON_GREEN_VARS = {"blue_schema": "green"}


def retried_asset_job(name: str, selection: dg.AssetSelection, **kwargs):
    return dg.define_asset_job(name, selection=selection, hooks={retryable_after_lost_connection}, **kwargs)


def build_asset_jobs(plan: ProjectPlan, key_of: dict[str, dg.AssetKey]) -> list:
    jobs = [
        retried_asset_job(
            pool.job_name,
            selection=dg.AssetSelection.assets(*(key_of[unique_id] for unique_id in pool.unique_ids)),
            description=f"The snapshots of pool '{pool.pool}'.",
        )
        for pool in plan.snapshot_pools
    ]
    jobs += [
        retried_asset_job(
            model.job_name,
            selection=dg.AssetSelection.assets(key_of[model.unique_id]),
            description=f"Model '{model.name}', per {model.partitions_def.cron_schedule} partition.",
        )
        for model in plan.partitioned.values()
    ]
    if plan.release is not None:
        # Releases run one at a time (a run-tag concurrency limit in the instance config): two
        # releases interleaving would promote each other's blue tables.
        jobs.append(
            retried_asset_job(
                plan.release.job_name,
                selection=dg.AssetSelection.assets(
                    BLUE_PREPARED_KEY, GREEN_PROMOTED_KEY, *(key_of[unique_id] for unique_id in plan.release.model_ids)
                ),
                tags=dict(plan.release.run_tags),
                description="Prepare blue, build and test every release model in it, promote to green.",
            )
        )
    return jobs


def build_tests_job(schedule: TestsSchedule, on_green: bool) -> dg.JobDefinition:
    """dbt tests are not assets, so selecting assets by tag cannot pick tests (nor tests on
    sources): the op calls dbt's own selection syntax instead."""
    args = ["test", "--select", f"tag:{schedule.tag}"]
    if on_green:
        args += ["--vars", json.dumps(TESTS_ON_GREEN_VARS)]

    @dg.op(name=f"{schedule.job_name}_dbt_test", required_resource_keys={"dbt"})
    def run_tagged_tests(context: dg.OpExecutionContext) -> None:
        run_dbt(context, context.resources.dbt, args)

    @dg.job(name=schedule.job_name, description=f"The dbt tests tagged '{schedule.tag}'.")
    def tests_job():
        run_tagged_tests()

    return tests_job


def build_tests_schedules(plan: ProjectPlan) -> list[dg.ScheduleDefinition]:
    return [
        dg.ScheduleDefinition(
            name=schedule.schedule_name,
            cron_schedule=schedule.cron,
            job=build_tests_job(schedule, on_green=plan.release is not None),
            execution_timezone=schedule.timezone,
        )
        for schedule in plan.config.tests_schedules
    ]
