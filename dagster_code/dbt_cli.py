"""Running dbt from Dagster steps: asset builds, and commands that are not builds
(run-operation, test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import dagster as dg
import dbt.version
from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from packaging import version

from dagster_code.out_of_memory import dbt_failure_for_memory, mark_out_of_memory, oom_kill_count
from dagster_code.retries import (
    lost_warehouse_connection,
    mark_retryable_after_lost_connection,
    restore_step_failure_policy,
)


class PlatformDbtCliResource(DbtCliResource):
    """dagster-dbt learns the dbt version by running `dbt --version` once per resource, that is
    once per step: a second Python start-up of dbt, about 5 s of CPU here, before every dbt
    command. It asks so that it can tell the Fusion engine from dbt-core; the platform runs the
    dbt-core locked in uv.lock, importable in this very process, so the version is read from it."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(dbt.version.__version__)


def dbt_resource(project: DbtProject) -> DbtCliResource:
    return PlatformDbtCliResource(project_dir=project, target=project.target)


def stream_dbt_build(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, args: list[str], dbt_vars: dict[str, str]
) -> Iterator:
    """`dbt build` of the step's selected nodes; a lost warehouse connection makes the run
    retryable (it is infrastructure, not a model or test failure), running out of memory makes it
    final (dagster_code.out_of_memory)."""
    restore_step_failure_policy(context)
    oom_kills_before = oom_kill_count()
    try:
        yield from dbt.cli(["build", *args, "--vars", json.dumps(dbt_vars)], context=context).stream()
    except DagsterDbtCliRuntimeError as error:
        raise_if_out_of_memory(context, oom_kills_before, error)
        if lost_warehouse_connection(str(error)):
            context.log.warning(
                "dbt lost its connection to the warehouse (not a model or test failure): this "
                "run's failure is marked retryable, so its retry builds what is missing."
            )
            mark_retryable_after_lost_connection(context)
        raise


def run_dbt(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    dbt: DbtCliResource,
    args: list[str],
) -> None:
    """Runs dbt, copies its log lines into the step's log, and raises if dbt failed.

    The error names the dbt command, so a failed promotion says which operation failed.
    """
    manifest_path = Path(dbt.project_dir) / "target" / "manifest.json"
    oom_kills_before = oom_kill_count()
    invocation = dbt.cli(args, manifest=manifest_path, raise_on_error=False)
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
        raise_if_out_of_memory(context, oom_kills_before)
        raise dg.Failure(
            description=f"`dbt {args[0]} {args[1] if len(args) > 1 else ''}` failed: "
            + ("\n".join(errors) or str(invocation.get_error())),
            metadata={"dbt_command": " ".join(args)},
        )


def raise_if_out_of_memory(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    oom_kills_before: int | None,
    error: Exception | None = None,
) -> None:
    """dbt failed: if the OOM killer killed it, the step fails saying so and the run is not retried."""
    failure = dbt_failure_for_memory(oom_kills_before)
    if failure is not None:
        context.log.error(failure.description)
        mark_out_of_memory(context.instance, context.run_id)
        raise failure from error
