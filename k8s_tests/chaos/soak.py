"""Faults at random moments (issue 12, part 4): the chaos soak.

Each round launches the example's release together with the sales domain's snapshot run (a run
of a pool), takes one of the suite's fault kinds and a moment of the release, both from a seeded
random generator (same seed, same rounds; see plan()), injects the fault then, and waits for both run groups
to end. Then it checks the suite's invariants:

- the release group: every job asset materialized exactly once across the parent and its retries
  (an asset built again only after a fault failed its dbt test), green equal to the reference
  release and promoted once; or, for a fault the release must not survive (out of memory), one
  failed run, no retry, green and `_release_log` unchanged;
- a reader of green, polling all round, never saw two releases at once;
- the snapshot group ended SUCCESS, each snapshot built once, one current version per key;
- every pool back to 0 slots in use, and no run of the instance left queued or started.

A round whose invariants fail is recorded, and the soak goes on; the table says which.
The moment is a fraction of the reference release's duration, launch to SUCCESS: a fault aimed at
the run pod before it runs waits for it, one that finds the release finished hits nothing of it
(the table says "after the release").
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from k8s_tests.chaos.release_checks import (
    Reference,
    assert_group_exactly_once,
    one_current_version_per_key,
)
from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.dagster_api import DagsterApi, Run, failed_blocking_checks, materialized
from k8s_tests.harness.deployment import Deployment, wait_location_loaded
from k8s_tests.harness.example import MEMORY_HOG_TAG, SALES_JOB, SALES_SNAPSHOTS
from k8s_tests.harness.faults import (
    cordoned,
    drain,
    evict,
    freeze_node,
    kill_without_grace,
    live_component_pods,
    move_off,
    only_component_pod,
    partitioned,
    running_run_pod,
    schedulable_nodes,
    set_unschedulable,
    unfreeze_node,
    wait_components_ready,
)
from k8s_tests.harness.release import GreenReader, materialization_counts, wait_group_finished
from tests.support import GREEN, release_log, schema_contents

# As in the partition scenario: longer than the chart's PostgreSQL client timeouts (about 30 s).
PARTITION_SECONDS = 60
# Over the run pod's memory limit in dbt's process; below what the run worker needs to import.
DBT_HOG_MB = 2048
WORKER_MEMORY_LIMIT = "96Mi"
# Slots a SIGKILLed worker held are freed by run monitoring's sweep (ci/kind-values.yaml).
POOLS_IDLE_TIMEOUT_SECONDS = 180
RUN_SCHEDULED_TIMEOUT_SECONDS = 120
# A port-forward to a replaced PostgreSQL pod is restarted once the new pod is Ready.
READER_CATCH_UP_TIMEOUT_SECONDS = 180
# Components the lost-node and drain rounds keep on PostgreSQL's node: the soak talks to them.
KEPT_OFF_THE_LOST_NODE = ("webserver", "daemon")


@dataclass
class Round:
    """One round of the soak: what was injected, when, what it met, and what was seen after."""

    number: int
    fault: str
    fraction: float | None
    moment: float | None = None
    hit: str = ""
    release_id: str = ""
    parent_failed: float | None = None
    retry_started: float | None = None
    release_done: float | None = None
    runs: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class Fault:
    """A fault kind of the chaos suite, as the soak injects it."""

    name: str
    # Injects the fault into the round's release (its root run id) and says what it hit.
    inject: Callable[[Deployment, str], str]
    # Lands at the round's random moment; otherwise the release's own pre-hook is the fault.
    timed: bool = True
    # The release's run pod starts away from PostgreSQL's node (the node is lost or drained).
    away_from_postgresql: bool = False
    # The release must fail, once, and not be retried (out of memory).
    fails_release: bool = False
    launch_tags: dict[str, str] = field(default_factory=dict)


def current_run_pod(deployment: Deployment, root_id: str) -> tuple[Run, client.V1Pod] | None:
    """The newest run of the release's group and its Running pod (waited for), or None once the
    group has finished."""
    run = deployment.api.run_group(root_id)[-1]
    if run.finished:
        return None
    return run, running_run_pod(deployment, run.run_id)


def on_run_pod(action: Callable[[Deployment, client.V1Pod], str]) -> Callable[[Deployment, str], str]:
    def inject(deployment: Deployment, root_id: str) -> str:
        found = current_run_pod(deployment, root_id)
        if found is None:
            return "after the release"
        run, pod = found
        return f"{action(deployment, pod)} ({pod.spec.node_name}, run {run.run_id[:8]})"

    return inject


def _evict(deployment: Deployment, pod: client.V1Pod) -> str:
    evict(deployment, pod)
    return "run pod evicted"


def _kill(deployment: Deployment, pod: client.V1Pod) -> str:
    kill_without_grace(deployment, pod)
    return "run pod SIGKILLed"


def _drain(deployment: Deployment, pod: client.V1Pod) -> str:
    drain(deployment, pod.spec.node_name)
    set_unschedulable(deployment.core_v1, pod.spec.node_name, False)
    return "node drained, then uncordoned"


def _lose_node(deployment: Deployment, pod: client.V1Pod) -> str:
    # Unfrozen by the round's restore, once the release has recovered without it.
    freeze_node(pod.spec.node_name)
    return "node frozen"


def _partition(deployment: Deployment, pod: client.V1Pod) -> str:
    with partitioned(deployment, pod, only_component_pod(deployment, "postgresql")):
        time.sleep(PARTITION_SECONDS)
    return f"run pod <-> PostgreSQL dropped {PARTITION_SECONDS}s"


def delete_component(component: str) -> Callable[[Deployment, str], str]:
    def inject(deployment: Deployment, root_id: str) -> str:
        pods = live_component_pods(deployment, component)
        for pod in pods:
            deployment.core_v1.delete_namespaced_pod(pod.metadata.name, deployment.namespace)
        return f"{len(pods)} {component} pod(s) deleted"

    return inject


def by_its_own_hook(description: str) -> Callable[[Deployment, str], str]:
    return lambda deployment, root_id: description


_WORKER_MEMORY = {"memory": WORKER_MEMORY_LIMIT}
# Every fault kind of the chaos suite (README rows 1-3, 6-9, 14-17), as one release meets it.
FAULTS = (
    Fault("eviction", on_run_pod(_evict)),
    Fault("kill-without-grace", on_run_pod(_kill)),
    Fault("drain", on_run_pod(_drain), away_from_postgresql=True),
    Fault("node-loss", on_run_pod(_lose_node), away_from_postgresql=True),
    Fault("partition", on_run_pod(_partition)),
    Fault("daemon-deleted", delete_component("daemon")),
    Fault("code-servers-deleted", delete_component("code-location")),
    Fault("postgresql-deleted", delete_component("postgresql")),
    Fault(
        "dbt-oom",
        by_its_own_hook(f"dbt holds {DBT_HOG_MB} MB in a pre-hook"),
        timed=False,
        fails_release=True,
        launch_tags={MEMORY_HOG_TAG: str(DBT_HOG_MB)},
    ),
    Fault(
        "worker-oomkilled",
        by_its_own_hook(f"run pod limit {WORKER_MEMORY_LIMIT}"),
        timed=False,
        fails_release=True,
        launch_tags={
            "dagster-k8s/config": json.dumps(
                {"container_config": {"resources": {"requests": _WORKER_MEMORY, "limits": _WORKER_MEMORY}}}
            )
        },
    ),
)


def plan(seed: int, rounds: int) -> list[tuple[Fault, float]]:
    """The rounds of a seed: a fault kind and a moment (a fraction of the release) each. The kinds
    are dealt from a shuffled deck of all of them, so every kind comes once in each len(FAULTS)
    rounds, in a random order."""
    rng = random.Random(seed)
    dealt: list[Fault] = []
    while len(dealt) < rounds:
        dealt += rng.sample(FAULTS, len(FAULTS))
    return [(fault, rng.random()) for fault in dealt[:rounds]]


@contextmanager
def placed_away_from_postgresql(deployment: Deployment) -> Iterator[str]:
    """For a round that loses or drains the run pod's node: the webserver and the daemon moved to
    PostgreSQL's node, which stays cordoned inside the block (while the runs are launched and
    scheduled). Yields the node the runs go to."""
    postgresql_node = only_component_pod(deployment, "postgresql").spec.node_name
    others = [node for node in schedulable_nodes(deployment.core_v1) if node != postgresql_node]
    assert others, f"needs a schedulable worker besides PostgreSQL's node {postgresql_node}"
    move_off(deployment, others[0], KEPT_OFF_THE_LOST_NODE)
    with cordoned(deployment.core_v1, postgresql_node):
        yield others[0]


def wait_scheduled(deployment: Deployment, run_id: str) -> str:
    def probe() -> tuple[bool, object]:
        nodes = [p.spec.node_name for p in deployment.run_pods(run_id) if p.spec.node_name]
        return bool(nodes), nodes[0] if nodes else "no pod yet"

    return wait_until(f"the run pod of {run_id} to be scheduled", probe, RUN_SCHEDULED_TIMEOUT_SECONDS)


def progress(deployment: Deployment, root_id: str, job_assets: frozenset[str]) -> str:
    group = deployment.api.run_group(root_id)
    done = set()
    for run in group:
        events = deployment.api.events(run.run_id)
        done |= set(materialized(events)) - failed_blocking_checks(events)
    return f"{group[-1].status} {len(done)}/{len(job_assets)} ({len(group)} run{'s' * (len(group) > 1)})"


def check(round_: Round, what: str, assertion: Callable[[], None]) -> None:
    """Runs one invariant; a failure is recorded on the round, never raised."""
    try:
        assertion()
    except Exception as error:  # noqa: BLE001  (an invariant's failure, whatever raised it, is a verdict)
        round_.violations.append(f"{what}: {type(error).__name__}: {str(error)[:400]}")


def run_round(deployment: Deployment, reference: Reference, number: int, fault: Fault, fraction: float) -> Round:
    api = deployment.api
    warehouse = deployment.warehouse
    round_ = Round(number=number, fault=fault.name, fraction=fraction if fault.timed else None)
    green_before = schema_contents(warehouse, GREEN, reference.project.marts)
    log_before = release_log(warehouse)
    reader = GreenReader(lambda: deployment.warehouse)
    reader.start()
    placement = placed_away_from_postgresql(deployment) if fault.away_from_postgresql else nullcontext()
    try:
        with placement:
            launched = time.time()
            root_id = api.launch_run(reference.project.job, fault.launch_tags)
            snapshots_id = api.launch_run(SALES_JOB)
            round_.release_id = root_id
            deployment.runs_to_save.extend([root_id, snapshots_id])
            if fault.away_from_postgresql:
                wait_scheduled(deployment, root_id)
        if fault.timed:
            duration = reference.run.end_time - reference.run.creation_time
            time.sleep(max(0.0, launched + fraction * duration - time.time()))
        round_.moment = time.time() - launched
        before = progress(deployment, root_id, reference.job_assets)
        fault_at = time.time()
        round_.hit = f"{before}; {fault.inject(deployment, root_id)}"
        group = wait_group_finished(api, root_id)
        snapshots = wait_group_finished(api, snapshots_id)
        # A reader whose connection went down with PostgreSQL reconnects through a new port-forward:
        # its last read must come after the release ended, or "ends on the right one" means nothing.
        reads = reader.snapshots
        wait_until(
            "the green reader to read green again after the release ended",
            lambda: (reader.snapshots > reads + 1, reader.summary()),
            READER_CATCH_UP_TIMEOUT_SECONDS,
        )
    except Exception as error:  # noqa: BLE001  (the round failed; the soak restores and goes on)
        reader.stop()
        round_.violations.append(f"round did not complete: {type(error).__name__}: {str(error)[:400]}")
        return round_
    reader.stop()
    round_.runs = len(group)
    failed = [run for run in group if run.status == "FAILURE"]
    if failed and failed[0].end_time:
        round_.parent_failed = failed[0].end_time - fault_at
    if len(group) > 1 and group[-1].start_time:
        round_.retry_started = group[-1].start_time - fault_at
    round_.release_done = group[-1].end_time - fault_at

    if fault.fails_release:

        def failed_once_green_unchanged() -> None:
            assert [run.status for run in group] == ["FAILURE"], [(r.run_id, r.status) for r in group]
            assert group[0].tags.get("dagster-dbt-k8s/out_of_memory") == "true", group[0].tags
            assert schema_contents(warehouse, GREEN, reference.project.marts) == green_before
            assert release_log(warehouse) == log_before

        check(round_, "release failed once, green unchanged", failed_once_green_unchanged)
        expected_green = log_before[-1][0] if log_before else None
    else:
        check(round_, "release exactly once", lambda: assert_group_exactly_once(deployment, reference, group))
        expected_green = root_id

    def reader_saw_one_release_at_a_time() -> None:
        # A PostgreSQL restart or a partition drops the reader's connection: errors are expected there.
        assert reader.snapshots > 0, reader.summary()
        assert reader.mixes == [], reader.mixes[:3]
        assert reader.seen_ids and reader.seen_ids[-1] == expected_green, reader.summary()

    check(round_, "green reader", reader_saw_one_release_at_a_time)

    def snapshots_exactly_once() -> None:
        assert snapshots[-1].status == "SUCCESS", [(r.run_id, r.status) for r in snapshots]
        counts = materialization_counts(api, snapshots)
        redone = set().union(*(failed_blocking_checks(api.events(r.run_id)) for r in snapshots[:-1]))
        assert set(counts) == SALES_SNAPSHOTS, counts
        assert {key: n for key, n in counts.items() if n > 1 and key not in redone} == {}, counts
        one_current_version_per_key(warehouse)

    check(round_, "snapshots exactly once", snapshots_exactly_once)

    def pools_idle() -> None:
        wait_until(
            "every pool to have 0 slots in use",
            lambda: (not any((slots := api.pool_slots_in_use_all()).values()), slots),
            POOLS_IDLE_TIMEOUT_SECONDS,
        )

    check(round_, "pool slots back to 0", pools_idle)
    check(round_, "no run left queued or started", lambda: _assert_no_unfinished_run(api))
    return round_


def _assert_no_unfinished_run(api: DagsterApi) -> None:
    unfinished = api.unfinished_runs()
    assert unfinished == [], [(run.run_id, run.job_name, run.status) for run in unfinished]


def restore(deployment: Deployment) -> None:
    """Between rounds: every node unfrozen, Ready and schedulable, every pod of the chart Ready and
    the code location loaded. A failure here ends the soak (the next round would not be fair)."""
    core_v1 = deployment.core_v1
    for node in core_v1.list_node().items:
        unfreeze_node(core_v1, node.metadata.name)
        if node.spec.unschedulable:
            set_unschedulable(core_v1, node.metadata.name, False)
    wait_components_ready(deployment)
    wait_location_loaded(deployment)


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def table(seed: int, rounds: list[Round]) -> str:
    survived = sum(r.survived for r in rounds)
    lines = [
        f"Chaos soak, seed {seed}, {len(rounds)} rounds: faults survived / injected = {survived}/{len(rounds)}",
        "",
        "| round | fault | moment (s after launch, fraction) | release at the fault; what the fault hit "
        "| fault -> parent FAILURE (s) | -> retry started (s) | -> release ended (s) | runs | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rounds:
        moment = "its pre-hook" if r.fraction is None else f"{seconds(r.moment)} ({r.fraction:.2f})"
        verdict = "ok" if r.survived else "FAILED: " + "; ".join(r.violations)
        lines.append(
            f"| {r.number} | {r.fault} | {moment} | {r.hit} | {seconds(r.parent_failed)} | "
            f"{seconds(r.retry_started)} | {seconds(r.release_done)} | {r.runs} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def write_table(directory: Path, seed: int, rounds: list[Round]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"soak-seed{seed}-rounds{len(rounds)}.md"
    path.write_text(table(seed, rounds))
    return path
