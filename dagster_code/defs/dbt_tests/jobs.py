"""Tagged dbt tests on a schedule.

dbt tests are not assets, so selecting assets by tag cannot pick tests (nor tests on
sources): the op calls dbt's own selection syntax instead. The tests run against green,
the published release consumers read, not blue (a release in progress or the previous one).
"""

import json

import dagster as dg

from dagster_code.dbt_cli import run_dbt

HOURLY_TESTS_TAG = "hourly_tests"


@dg.op(required_resource_keys={"dbt"})
def run_tagged_tests(context: dg.OpExecutionContext) -> None:
    """Runs only the dbt tests tagged `hourly_tests`, source tests included."""
    on_green = {"blue_schema": "green"}
    run_dbt(
        context,
        context.resources.dbt,
        ["test", "--select", f"tag:{HOURLY_TESTS_TAG}", "--vars", json.dumps(on_green)],
    )


@dg.job
def hourly_tests_job():
    run_tagged_tests()


hourly_tests_schedule = dg.ScheduleDefinition(
    name="hourly_tests_schedule",
    cron_schedule="0 * * * *",
    job=hourly_tests_job,
    execution_timezone="UTC",
)
