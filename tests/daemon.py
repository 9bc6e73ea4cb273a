"""A real `dagster-daemon` for tests that need the run queue, run retries and pools.

Runs are submitted with `dagster job launch` to the instance's QueuedRunCoordinator, the
daemon dequeues them, and the default run launcher starts each run worker as a process of
the daemon's code server: the same path as production, minus Kubernetes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import RunsFilter

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS_MODULE = "dagster_code.definitions"
LAUNCH_TAG = "test/launch_id"


@contextmanager
def running_daemon(log_path: Path) -> Iterator[subprocess.Popen]:
    """Starts `dagster-daemon run` with the current environment (DAGSTER_HOME, DBT_*)."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["dagster-daemon", "run", "-m", DEFINITIONS_MODULE],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(timeout=30)


def launch(instance: dg.DagsterInstance, job: str, tags: dict[str, str] | None = None) -> str:
    """Submits a run to the queue like a user would; returns its run id."""
    launch_id = uuid.uuid4().hex
    subprocess.run(
        [
            "dagster",
            "job",
            "launch",
            "-m",
            DEFINITIONS_MODULE,
            "-j",
            job,
            "--tags",
            json.dumps({**(tags or {}), LAUNCH_TAG: launch_id}),
        ],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    (run,) = instance.get_runs(filters=RunsFilter(tags={LAUNCH_TAG: launch_id}, exclude_subruns=True))
    return run.run_id


def materialized_keys_of_run(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    return {
        record.dagster_event.asset_key
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    }


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    """The run worker's pid, which the code server reports when it starts the run."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        match = re.search(r"Started process for run \(pid: (\d+)\)", record.message or "")
        if match:
            return int(match.group(1))
    raise LookupError(f"run {run_id} has not reported its worker's pid")


def _process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def evict_process(pid: int, grace_seconds: float) -> None:
    """What a pod eviction does to a container: SIGTERM to its main process, then, after
    the grace period, SIGKILL to every process still left in it (dbt included)."""
    tree = _process_tree(pid)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(_alive(p) for p in tree):
        time.sleep(0.5)
    for leftover in _process_tree(pid) + tree:
        if _alive(leftover):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)


def step_intervals(instance: dg.DagsterInstance, run_id: str, step_key: str) -> tuple[float, float]:
    """When a step started and when it finished (success or failure), as timestamps."""
    start = end = None
    for record in instance.all_logs(run_id):
        if record.step_key != step_key or not record.is_dagster_event:
            continue
        event_type = record.dagster_event.event_type
        if event_type == dg.DagsterEventType.STEP_START:
            start = record.timestamp
        elif event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            end = record.timestamp
    assert start is not None and end is not None, f"step {step_key} of run {run_id} did not run to an end"
    return start, end
