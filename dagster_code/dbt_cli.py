"""Running dbt commands that are not asset builds (run-operation, test) from Dagster steps."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_code.project import dbt_project


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project(), target=dbt_project().target)


def run_dbt(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    dbt: DbtCliResource,
    args: list[str],
) -> None:
    """Runs dbt, copies its log lines into the step's log, and raises if dbt failed.

    The error names the dbt command, so a failed promotion says which operation failed.
    """
    invocation = dbt.cli(args, manifest=dbt_project().manifest_path, raise_on_error=False)
    for event in invocation.stream_raw_events():
        message = event.raw_event.get("info", {}).get("msg")
        if message:
            context.log.info(message)
    invocation.wait()
    if not invocation.is_successful():
        raise dg.Failure(
            description=f"`dbt {' '.join(args)}` failed",
            metadata={"dbt_error": str(invocation.get_error())},
        )
