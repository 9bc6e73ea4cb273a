"""Case 7 of the benchmark (issue 14, part 5): the example's microbatch model over many daily
partitions, in two ways:

- a backfill of the asset, launched as the UI's backfill dialog launches one: its single-run
  backfill policy makes one run of the whole range, in which dbt builds the range batch by batch;
- a run per partition, all launched at once (as a catch-up of a daily schedule would), each
  through the run queue under the chart's maxConcurrentRuns. A backfill cannot give this: Dagster
  follows the asset's single-run policy for a backfill of its job too (one run). Once a share of
  them has ended, one partition run is evicted; its retry (the instance's run retries, as for any
  run) must materialize its partition.

Per way: wall time (launched -> last run ended), runs launched and run pods created, the most runs
in progress at once, read from the runs' own events, against the queue's limit, and every
partition materialized.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from example_extras.raw_data import EVENTS_START
from kubernetes import client

from k8s_tests.bench.cases import PROGRESS_SECONDS
from k8s_tests.bench.report import Results
from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.dagster_api import DagsterApi, Run, materialized_partitions
from k8s_tests.harness.deployment import Deployment, chart_values
from k8s_tests.harness.example import MICROBATCH_JOB
from k8s_tests.harness.faults import evict, running_run_pod
from tests.waiting import WaitTimeout

CASE = "7 backfill"
BACKFILL_DAYS = 90
# More runs than the chart's maxConcurrentRuns (10), so that the queue holds some back.
BACKFILL_DAYS_QUICK = 12
# A partition run is evicted once this share of the runs has ended.
EVICT_AT_SHARE = 0.3
# 90 run pods on two cores, each importing the code location (about 15 s of CPU apiece).
BACKFILL_TIMEOUT_SECONDS = 3600
# An evicted run's retry is created within seconds (case 2); past this it is taken as missing.
RETRY_CREATED_TIMEOUT_SECONDS = 120
BACKFILL_TAG = "dagster/backfill"
PARENT_RUN_TAG = "dagster/parent_run_id"
PARTITION_TAG = "dagster/partition"
# Groups the runs launched one per partition, their retries included (a retry keeps its parent's tags).
RUNS_TAG = "dagster-dbt-k8s-bench/partition-runs"
TERMINAL_BACKFILL_STATUSES = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
# A run counts against the queue's limit from its dequeue until its end.
RUN_LAUNCHED_EVENTS = {"RunDequeuedEvent", "RunStartingEvent"}
RUN_ENDED_EVENTS = {"RunSuccessEvent", "RunFailureEvent", "RunCanceledEvent"}


@dataclass(frozen=True)
class Launched:
    """What was launched: the tag all its runs carry, retries included, and the backfill's id."""

    tag: tuple[str, str]
    backfill_id: str | None = None

    def settled(self, api: DagsterApi, runs: list[Run], partitions: list[str]) -> bool:
        """Every run it will launch exists (a backfill says so by its status)."""
        if self.backfill_id:
            return api.backfill_status(self.backfill_id) in TERMINAL_BACKFILL_STATUSES
        return len(runs) >= len(partitions)


def backfill(deployment: Deployment, results: Results, days: int) -> None:
    api = deployment.api
    (asset,) = api.job_asset_keys(MICROBATCH_JOB)
    partitions = [(EVENTS_START + timedelta(days=day)).isoformat() for day in range(days)]
    limit = chart_values()["concurrency"]["runs"]["maxConcurrentRuns"]
    print(f"== case 7: {asset}, {days} daily partitions (maxConcurrentRuns {limit})", flush=True)

    def asset_backfill() -> Launched:
        backfill_id = api.launch_backfill(partitions, [asset])
        return Launched((BACKFILL_TAG, backfill_id), backfill_id)

    def run_per_partition() -> Launched:
        group = f"{MICROBATCH_JOB}-{int(time.time())}"
        for partition in partitions:
            api.launch_run(MICROBATCH_JOB, {PARTITION_TAG: partition, RUNS_TAG: group})
        return Launched((RUNS_TAG, group))

    label = f"{days} partitions"
    measure(deployment, results, f"{label}, backfill (one run)", asset_backfill, partitions, limit, evict_after=None)
    measure(
        deployment,
        results,
        f"{label}, a run per partition",
        run_per_partition,
        partitions,
        limit,
        evict_after=max(1, int(days * EVICT_AT_SHARE)),
    )


def measure(
    deployment: Deployment,
    results: Results,
    label: str,
    launch: Callable[[], Launched],
    partitions: list[str],
    limit: int,
    evict_after: int | None,
) -> None:
    """Launches, waits for every run (retries included) to end, evicting one partition run once
    `evict_after` runs have ended, and records and checks what the runs did."""
    api = deployment.api
    launched_at = time.time()
    launched = launch()
    print(f"{label}: launched (runs tagged {launched.tag[0]}={launched.tag[1]})", flush=True)
    evicted: list[Run] = []
    last_progress = time.monotonic()

    def ended() -> tuple[bool, object]:
        nonlocal last_progress
        runs = api.runs_with_tag(*launched.tag)
        finished = [run for run in runs if run.finished]
        if evict_after is not None and not evicted and len(finished) >= evict_after:
            evicted.extend(evict_a_started_run(deployment, runs))
        if time.monotonic() - last_progress > PROGRESS_SECONDS:
            print(f"{label}: {len(finished)} of {len(runs)} runs ended", flush=True)
            last_progress = time.monotonic()
        settled = launched.settled(api, runs, partitions) and len(finished) == len(runs)
        return settled and retries_settled(runs, evicted), (len(finished), len(runs))

    wait_until(f"{label}: every run to end", ended, BACKFILL_TIMEOUT_SECONDS)
    runs = api.runs_with_tag(*launched.tag)
    events = {run.run_id: api.events(run.run_id) for run in runs}
    done = Counter[str]()
    for run_events in events.values():
        done.update(materialized_partitions(run_events))
    missing = [partition for partition in partitions if not done[partition]]
    twice = sorted(partition for partition, count in done.items() if count > 1)
    most = most_in_progress(list(events.values()))
    wall_time = max(run.end_time for run in runs) - launched_at
    results.add(CASE, f"{label}: wall time (launched -> last run ended)", "s", wall_time)
    results.add(CASE, f"{label}: runs launched", "runs", len(runs))
    results.add(CASE, f"{label}: run pods created", "pods", sum(pods_created(deployment, run.run_id) for run in runs))
    results.add(CASE, f"{label}: most runs in progress at once (limit {limit})", "runs", most)
    results.add(CASE, f"{label}: partitions not materialized (must be 0)", "partitions", len(missing))
    results.add(CASE, f"{label}: partitions materialized more than once", "partitions", len(twice))
    problems = []
    if missing:
        problems.append(f"partitions never materialized: {missing}")
    if limit >= 0 and most > limit:
        problems.append(f"{most} runs in progress at once, over maxConcurrentRuns {limit}")
    if evict_after is not None and not evicted:
        problems.append("no partition run was evicted (none was in progress once enough had ended)")
    problems.extend(eviction_problems(runs, evicted))
    retried = {run.tags.get(PARENT_RUN_TAG) for run in runs}
    failed = [run.run_id for run in runs if run.status != "SUCCESS" and run.run_id not in retried]
    if failed:
        problems.append(f"runs that failed and were not retried: {failed}")
    # A partition whose run was evicted after its materialization but before its checks ended is
    # built again by the retry (FROM_ASSET_FAILURE); no other may be.
    evicted_partitions = {run.tags.get(PARTITION_TAG) for run in evicted}
    if set(twice) - evicted_partitions:
        problems.append(f"partitions materialized more than once: {twice}")
    if problems:
        raise RuntimeError(f"{label}: " + "; ".join(problems))


def pods_created(deployment: Deployment, run_id: str) -> int:
    """Pods the run's Job has had, as its status counts them: an evicted pod is deleted, but
    counted there as failed."""
    status = deployment.batch_v1.read_namespaced_job(f"dagster-run-{run_id}", deployment.namespace).status
    return (status.active or 0) + (status.succeeded or 0) + (status.failed or 0)


def retries_settled(runs: list[Run], evicted: list[Run]) -> bool:
    """Each evicted run has a retry, or has ended long enough ago that none is coming."""
    for parent in evicted:
        if any(run.tags.get(PARENT_RUN_TAG) == parent.run_id for run in runs):
            continue
        ended = next(run for run in runs if run.run_id == parent.run_id)
        if not ended.finished or time.time() - ended.end_time < RETRY_CREATED_TIMEOUT_SECONDS:
            return False
    return True


def evict_a_started_run(deployment: Deployment, runs: list[Run]) -> list[Run]:
    """Evicts the run pod of a run in progress (one whose worker has started): [that run], or []
    when none is (or it ended before its pod was evicted), to try again at the next poll."""
    for run in runs:
        if run.status == "STARTED":
            try:
                evict(deployment, running_run_pod(deployment, run.run_id))
            except (client.ApiException, WaitTimeout) as error:
                print(f"run {run.run_id} not evicted ({error}); another will be", flush=True)
                return []
            print(f"evicted the run pod of {run.run_id} (partition {run.tags.get(PARTITION_TAG)})", flush=True)
            return [run]
    return []


def eviction_problems(runs: list[Run], evicted: list[Run]) -> list[str]:
    """What is wrong with the evicted run's fate: it must have failed and have a retry, of the same
    partition, that succeeded."""
    problems = []
    for parent in evicted:
        status = next(run.status for run in runs if run.run_id == parent.run_id)
        retries = [run for run in runs if run.tags.get(PARENT_RUN_TAG) == parent.run_id]
        if status != "FAILURE":
            problems.append(f"the evicted run {parent.run_id} ended {status}, not FAILURE")
        if not any(
            r.status == "SUCCESS" and r.tags.get(PARTITION_TAG) == parent.tags.get(PARTITION_TAG) for r in retries
        ):
            problems.append(
                f"the evicted run {parent.run_id} has no successful retry: {[(r.run_id, r.status) for r in retries]}"
            )
    return problems


def most_in_progress(runs_events: list[list[dict[str, Any]]]) -> int:
    """The most runs in progress at one moment, each from its dequeue (or launch) to its end
    event; at equal times an end counts before a start, as the queue sees an ended run's slot free."""
    edges = []
    for events in runs_events:
        launched = [int(e["timestamp"]) for e in events if e["__typename"] in RUN_LAUNCHED_EVENTS]
        ended = [int(e["timestamp"]) for e in events if e["__typename"] in RUN_ENDED_EVENTS]
        if launched:
            edges.append((min(launched), 1))
            edges.append((max(ended) if ended else float("inf"), -1))
    most = current = 0
    for _, step in sorted(edges):
        current += step
        most = max(most, current)
    return most
