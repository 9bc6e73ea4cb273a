"""A dbt step killed by the kernel for memory fails saying so, and its run is not retried.

The kernel is real: the tests make a memory cgroup with a small limit (cgroup v1, as on this
machine's hosts and kind nodes), and the release runs in a process that sees that cgroup where a
container sees its own (a private mount namespace with it bound over /sys/fs/cgroup/memory), so
the step reads the counter it would read in a run pod. The worker-killed case (the container
terminated OOMKilled) needs Kubernetes: k8s_tests/chaos/test_chaos_oom.py."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_code.config import load_project_config
from dagster_code.out_of_memory import MAX_RETRIES_TAG, OUT_OF_MEMORY_TAG, dbt_failure_for_memory, oom_kill_count
from tests.conftest import DBT_PROJECT_DIR
from tests.support import GREEN, load_raw, table_exists
from tests.waiting import wait_until

V1_MEMORY = Path("/sys/fs/cgroup/memory")
LIMIT_MB = 768
# Well past the limit with the worker and dbt themselves: dbt, the largest process, is the one killed.
HOG_MB = 1536
MEMORY_HOG_TAG = load_project_config(DBT_PROJECT_DIR).vars_from_run_tags["memory_hog_mb"]
SUBPROCESS_TIMEOUT_SECONDS = 600
CGROUP_REMOVAL_TIMEOUT_SECONDS = 30


def cgroup_v1_memory_writable() -> bool:
    return os.geteuid() == 0 and (V1_MEMORY / "cgroup.procs").exists() and shutil.which("unshare") is not None


pytestmark = pytest.mark.skipif(
    not cgroup_v1_memory_writable(),
    reason="needs root, a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory and unshare(1), "
    "to put a real memory limit on the process that runs dbt",
)


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    path = V1_MEMORY / f"dagster-dbt-k8s-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    (path / "memory.limit_in_bytes").write_text(str(LIMIT_MB * 2**20))
    yield path
    remove_cgroup(path)


def remove_cgroup(path: Path) -> None:
    """Kill what is left in the cgroup and remove it. rmdir fails with EBUSY until the kernel has
    released the last task (seen once in CI, right after the test passed: an OOM-killed task)."""

    def removed() -> tuple[bool, str]:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        try:
            path.rmdir()
        except OSError as error:
            if error.errno != errno.EBUSY:
                raise
            return False, f"busy, tasks left: {(path / 'tasks').read_text().split()}"
        return True, "removed"

    wait_until(f"memory cgroup {path} to be removed", removed, CGROUP_REMOVAL_TIMEOUT_SECONDS, interval=0.2)


def in_memory_cgroup(cgroup: Path, command: list[str]) -> list[str]:
    """`command` in `cgroup`, seeing it at /sys/fs/cgroup/memory as a container sees its own."""
    script = f'mount --bind {cgroup} {V1_MEMORY} && echo $$ > {V1_MEMORY}/cgroup.procs && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, "sh", *command]


def as_container_root(tmp_path: Path, cgroup: Path) -> Path:
    """A cgroup root laid out as the container's /sys/fs/cgroup (v1), for reading the counters."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "memory").symlink_to(cgroup)
    return root


def test_counts_a_real_oom_kill_and_names_the_limit(memory_cgroup, tmp_path):
    root = as_container_root(tmp_path, memory_cgroup)
    before = oom_kill_count(root)
    assert before == 0

    crashed = subprocess.run(in_memory_cgroup(memory_cgroup, [sys.executable, "-c", "raise SystemExit(3)"]))
    assert crashed.returncode == 3
    assert dbt_failure_for_memory(before, root) is None, "a plain failure is not blamed on memory"

    hog = f"held = b'x' * ({HOG_MB} * 2**20); print(len(held))"
    killed = subprocess.run(in_memory_cgroup(memory_cgroup, [sys.executable, "-c", hog]))
    assert killed.returncode == -9
    assert oom_kill_count(root) == 1
    failure = dbt_failure_for_memory(before, root)
    assert failure is not None
    assert "Out of memory" in failure.description
    assert f"({LIMIT_MB}Mi)" in failure.description
    assert "runLauncher.resources.limits.memory" in failure.description


RELEASE_IN_CGROUP = """
import json, sys
import dagster as dg
from dagster_code.project import dbt_project
from dagster_code.project_definitions import build_definitions
from tests.support import run_job

with dg.DagsterInstance.get() as instance:
    result = run_job(build_definitions(dbt_project()), "release_job", instance, tags={sys.argv[1]: sys.argv[2]})
    failures = [event.step_failure_data.error.message for event in result.all_events if event.is_step_failure]
    tags = instance.get_run_by_id(result.run_id).tags
    print(json.dumps({"success": result.success, "failures": failures, "tags": dict(tags)}))
"""


def test_release_whose_dbt_runs_out_of_memory_fails_saying_so_without_retries(memory_cgroup, warehouse, instance):
    load_raw(warehouse)
    completed = subprocess.run(
        in_memory_cgroup(memory_cgroup, [sys.executable, "-c", RELEASE_IN_CGROUP, MEMORY_HOG_TAG, str(HOG_MB)]),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        cwd=DBT_PROJECT_DIR.parent,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])

    assert not outcome["success"]
    assert any("Out of memory: dbt was killed" in message for message in outcome["failures"]), outcome["failures"]
    assert any(f"({LIMIT_MB}Mi)" in message for message in outcome["failures"])
    assert outcome["tags"][OUT_OF_MEMORY_TAG] == "true"
    assert outcome["tags"][MAX_RETRIES_TAG] == "0"
    # Nothing of the failed release reached the consumers.
    assert not table_exists(warehouse, GREEN, "fct_orders")
