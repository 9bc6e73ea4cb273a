"""A run that meets its pod's memory limit fails once, says so, and is not retried.

The kernel's OOM killer ends it one of two ways:
- dbt, a child of the run worker and the largest process of the container, is killed: the worker
  survives and sees dbt end on SIGKILL, which dagster-dbt reports as an exit code and nothing
  more. The container's memory cgroup counts the kill (`oom_kill_count`), which is how the step
  tells it apart from a dbt crash (`dbt_failure_for_memory`).
- the worker itself is killed: the container terminates `OOMKilled`, its Job fails, and run
  monitoring finds it (dagster_code.run_launcher).

A retry with the same limit would meet it again, after redoing whatever led up to it. So the run
fails with a message naming the limit and the value that raises it, and its retries are turned off
(`mark_out_of_memory`): the operator raises the limit and re-executes from the failure.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

OUT_OF_MEMORY_TAG = "dagster-dbt-k8s/out_of_memory"
MAX_RETRIES_TAG = "dagster/max_retries"
# The container's own memory cgroup: cgroup v2 (namespaced) or v1 (the memory controller's mount).
CGROUP_ROOT = Path("/sys/fs/cgroup")
HOW_TO_RAISE_THE_LIMIT = (
    "Raise runLauncher.resources.limits.memory in the chart's values (for one job or run: the "
    "dagster-k8s/config tag's container_config.resources), then re-execute the run from its failure."
)


def oom_kill_count(cgroup_root: Path = CGROUP_ROOT) -> int | None:
    """How many processes the OOM killer has killed in this container's memory cgroup; None where
    no memory cgroup can be read (not in a container, or a kernel older than 4.13)."""
    for counters in (cgroup_root / "memory.events", cgroup_root / "memory" / "memory.oom_control"):
        try:
            lines = counters.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    return None


def memory_limit(cgroup_root: Path = CGROUP_ROOT) -> str:
    """The container's memory limit as the kernel holds it, for messages."""
    for path in (cgroup_root / "memory.max", cgroup_root / "memory" / "memory.limit_in_bytes"):
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value == "max" or int(value) >= 2**62:
            return "no limit"
        return f"{int(value) // 2**20}Mi"
    return "unknown"


def dbt_failure_for_memory(kills_before: int | None, cgroup_root: Path = CGROUP_ROOT) -> dg.Failure | None:
    """The failure to raise instead of dbt's own error when the OOM killer struck while dbt ran."""
    kills_after = oom_kill_count(cgroup_root)
    if kills_before is None or kills_after is None or kills_after <= kills_before:
        return None
    limit = memory_limit(cgroup_root)
    return dg.Failure(
        description=(
            f"Out of memory: dbt was killed by the kernel for exceeding the run pod's memory limit "
            f"({limit}). Not retried: a retry with the same limit would fail the same way. " + HOW_TO_RAISE_THE_LIMIT
        ),
        metadata={"memory_limit": limit, "oom_kills": kills_after - kills_before},
    )


def mark_out_of_memory(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tags the run as out of memory and turns its retries off; the tags must be on the run before
    its failure is recorded, which is when the retry daemon reads them."""
    instance.add_run_tags(run_id, {OUT_OF_MEMORY_TAG: "true", MAX_RETRIES_TAG: "0"})
