"""Running dbt from Dagster steps: asset builds, and commands that are not builds
(run-operation, test)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path

import dagster as dg
import dbt.version
from dagster_dbt import DbtCliInvocation, DbtCliResource, DbtProject
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from packaging import version

from dagster_code.out_of_memory import dbt_failure_for_memory, mark_out_of_memory, oom_kill_count
from dagster_code.retries import (
    lost_warehouse_connection,
    mark_retryable_after_lost_connection,
)


class PlatformDbtCliResource(DbtCliResource):
    """dagster-dbt learns the dbt version by running `dbt --version` once per resource, that is
    once per step: a second Python start-up of dbt, about 5 s of CPU here, before every dbt
    command. It asks so that it can tell the Fusion engine from dbt-core; the platform runs the
    dbt-core locked in uv.lock, importable in this very process, so the version is read from it."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(dbt.version.__version__)


# dbt, reading a run-operation's arguments from a file (see the script for why).
DBT_EXECUTABLE = Path(__file__).parent / "bin" / "dbt_with_args_file.py"


def dbt_resource(project: DbtProject) -> DbtCliResource:
    return PlatformDbtCliResource(project_dir=project, target=project.target, dbt_executable=str(DBT_EXECUTABLE))


# dbt's parse state, which dagster-dbt copies from the project's target folder into each
# invocation's own before dbt starts.
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def share_parse_state(context: dg.OpExecutionContext | dg.AssetExecutionContext, invocation: DbtCliInvocation) -> None:
    """dbt re-parses the whole project when the vars, the target or the profile's connection
    differ from those of the parse state it finds, and the image's was made at build time, with
    placeholder credentials and no vars: every invocation of a run re-parsed, a cost that grows with
    the project (seconds per thousand models). The state this invocation wrote replaces the shared
    one, so the next invocation of this pod with the same vars (a release's run-operations and its
    build pass the same) parses only what changed. It is a cache: dbt checks it, and a state left by
    other vars or another process is parsed over, never wrong. Replaced atomically, as concurrent
    runs of local development share the folder; a folder that cannot be written is left as it is."""
    fresh = invocation.target_path / PARTIAL_PARSE_FILE
    target_dir = Path(os.environ.get("DBT_TARGET_PATH", "target"))
    shared = (target_dir if target_dir.is_absolute() else invocation.project_dir / target_dir) / PARTIAL_PARSE_FILE
    if not fresh.is_file() or fresh == shared:
        return
    staged = shared.with_name(f".{PARTIAL_PARSE_FILE}.{os.getpid()}")
    try:
        staged.write_bytes(fresh.read_bytes())
        staged.replace(shared)
    except OSError as error:
        context.log.debug(f"dbt's parse state not shared for the next invocation ({error})")


def stream_dbt_build(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, args: list[str], dbt_vars: dict[str, str]
) -> Iterator:
    """`dbt build` of the step's selected nodes; a lost warehouse connection makes the run
    retryable (it is infrastructure, not a model or test failure), running out of memory makes it
    final (dagster_code.out_of_memory)."""
    oom_kills_before = oom_kill_count()
    invocation = dbt.cli(["build", *args, "--vars", json.dumps(dbt_vars)], context=context)
    try:
        yield from invocation.stream()
    except DagsterDbtCliRuntimeError as error:
        raise_if_out_of_memory(context, oom_kills_before, error)
        if lost_warehouse_connection(str(error)):
            context.log.warning(
                "dbt lost its connection to the warehouse (not a model or test failure): this "
                "run's failure is marked retryable, so its retry builds what is missing."
            )
            mark_retryable_after_lost_connection(context)
        raise
    finally:
        share_parse_state(context, invocation)


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
    share_parse_state(context, invocation)
    if not invocation.is_successful():
        raise_if_out_of_memory(context, oom_kills_before)
        raise dg.Failure(
            description=f"`dbt {args[0]} {args[1] if len(args) > 1 else ''}` failed: "
            + ("\n".join(errors) or str(invocation.get_error())),
            metadata={"dbt_command": " ".join(args)},
        )


def run_operation(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    dbt: DbtCliResource,
    macro: str,
    macro_args: Mapping[str, object],
    dbt_vars: Mapping[str, str],
) -> None:
    """`dbt run-operation macro` (through run_dbt). Its arguments travel in a file, so they may
    name any number of tables."""
    with tempfile.TemporaryDirectory(prefix="dbt-operation-") as folder:
        args_file = Path(folder) / "args.json"
        args_file.write_text(json.dumps(macro_args), encoding="utf-8")
        run_dbt(context, dbt, ["run-operation", macro, "--args-file", str(args_file), "--vars", json.dumps(dbt_vars)])


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
