"""A real `dagster-daemon` for tests that need the run queue, run retries and pools.

Runs are submitted with `dagster job launch` to the instance's QueuedRunCoordinator, the
daemon dequeues them, and the default run launcher starts each run worker as a process of
the code server: the same path as production, minus Kubernetes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import dagster as dg
from dagster._core.storage.dagster_run import RunsFilter
from dagster._grpc.client import DagsterGrpcClient

from tests.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS_MODULE = "dagster_code.definitions"
LAUNCH_TAG = "test/launch_id"


# Importing the definitions on a loaded CI machine (four suites' workers and a cluster build).
CODE_SERVER_START_TIMEOUT_SECONDS = 300


@dataclass
class LocalDaemon:
    """A code server and a `dagster-daemon` on it, as the chart deploys them, minus Kubernetes."""

    code_server_socket: Path
    process: subprocess.Popen

    def launch(self, instance: dg.DagsterInstance, job: str, tags: dict[str, str] | None = None) -> str:
        """Submits a run to the queue like a user would; returns its run id."""
        launch_id = uuid.uuid4().hex
        subprocess.run(
            [
                "dagster",
                "job",
                "launch",
                "--grpc-socket",
                str(self.code_server_socket),
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


def _code_server_serving(socket: Path, server: subprocess.Popen) -> tuple[bool, object]:
    if server.poll() is not None:
        raise RuntimeError(f"the code server exited with code {server.returncode} before serving")
    if not socket.exists():  # asked before, the client prints its connection error
        return False, "no socket yet"
    status = DagsterGrpcClient(socket=str(socket)).health_check_query()
    return status == "SERVING", status


@contextmanager
def _process(args: list[str], log: IO[str]) -> Iterator[subprocess.Popen]:
    """A process in a session of its own, so that stopping it stops what it started (run workers)."""
    process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@contextmanager
def running_daemon(log_path: Path) -> Iterator[LocalDaemon]:
    """Starts `dagster code-server start` for the project's definitions and `dagster-daemon run` on
    it, with the current environment (DAGSTER_HOME, DBT_*); both log to `log_path`, run workers
    (the code server's children) included.

    The daemon gets the server's address, as in the chart: given the module instead, it would
    start a code server of its own and, at each workspace refresh (every minute), start another
    one that imports the definitions again."""
    with (
        log_path.open("w") as log,
        tempfile.TemporaryDirectory(prefix="dagster-code-server-") as socket_dir,
    ):
        # Not in pytest's tmp_path: a Unix socket's path is limited to 107 bytes.
        socket = Path(socket_dir) / "grpc.sock"
        with _process(["dagster", "code-server", "start", "-m", DEFINITIONS_MODULE, "-s", str(socket)], log) as server:
            wait_until(
                f"the code server on {socket} to serve",
                lambda: _code_server_serving(socket, server),
                CODE_SERVER_START_TIMEOUT_SECONDS,
            )
            with _process(["dagster-daemon", "run", "--grpc-socket", str(socket)], log) as daemon:
                yield LocalDaemon(socket, daemon)


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
