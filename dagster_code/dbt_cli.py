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
    errors = []
    for event in invocation.stream_raw_events():
        info = event.raw_event.get("info", {})
        message = info.get("msg")
        if not message:
            continue
        if info.get("level") == "error":
            errors.append(message)
            context.log.error(message)
        else:
            context.log.info(message)
    invocation.wait()
    if not invocation.is_successful():
        raise dg.Failure(
            description=f"`dbt {args[0]} {args[1] if len(args) > 1 else ''}` failed: "
            + ("\n".join(errors) or str(invocation.get_error())),
            metadata={"dbt_command": " ".join(args)},
        )
