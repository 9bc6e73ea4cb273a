"""Chaos scenarios of the snapshot pools on kind (issue 5): a snapshot run's pod evicted or killed
while its step holds the pool's only slot (3); runs of one pool never overlap while other pools'
runs do, and a limit changed with `helm upgrade` takes effect with nothing restarted by hand (4).

The slow-model tag makes snap_orders and snap_inventory_levels sleep in a pre-hook, so a snapshot
step holds its slot long enough to be hit, and two steps long enough to be seen overlapping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from k8s_tests.chaos.release_checks import one_current_version_per_key, wait_one_retry_finished
from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.dagster_api import DagsterApi, Run
from k8s_tests.harness.deployment import Deployment, run_up
from k8s_tests.harness.example import (
    INVENTORY_JOB,
    INVENTORY_STEP,
    SALES_JOB,
    SALES_POOL,
    SALES_SNAPSHOTS,
    SALES_STEP,
    SLOW_MODEL_TAG,
    SLOW_SNAPSHOT,
)
from k8s_tests.harness.faults import evict, kill_without_grace, running_run_pod
from k8s_tests.harness.release import failure_messages, materialization_counts

# Long enough to evict inside, short enough for pairs of runs that must not overlap.
HOLD_SLOT_SECONDS = 30
OVERLAP_SECONDS = 25
RUNS_TIMEOUT_SECONDS = 600
SLOT_CLAIMED_TIMEOUT_SECONDS = 300
SLOTS_FREED_TIMEOUT_SECONDS = 120


def wait_runs_finished(api: DagsterApi, run_ids: list[str]) -> list[Run]:
    def probe() -> tuple[bool, list[Run]]:
        runs = [api.run(run_id) for run_id in run_ids]
        return all(run.finished for run in runs), runs

    return wait_until(f"runs {run_ids} to finish", probe, RUNS_TIMEOUT_SECONDS, interval=3)


def launch_together(api: DagsterApi, jobs: list[str]) -> list[str]:
    return [api.launch_run(job, {SLOW_MODEL_TAG: str(OVERLAP_SECONDS)}) for job in jobs]


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def wait_pool_idle(api: DagsterApi, pool: str) -> dict:
    def probe() -> tuple[bool, object]:
        info = api.pool_slots_in_use(pool)
        return info["activeSlotCount"] == 0 and not info["claimedSlots"], info

    return wait_until(f"pool {pool} to have no slot in use", probe, SLOTS_FREED_TIMEOUT_SECONDS)


@pytest.mark.parametrize(
    "fault",
    [
        # The release scenarios evict in CI; here the worker still frees its own slot.
        pytest.param(evict, id="eviction", marks=pytest.mark.full_suite),
        # The case Dagster leaves open: a worker that cannot give its slot back.
        pytest.param(kill_without_grace, id="kill-without-grace"),
    ],
)
def test_snapshot_run_faulted_while_holding_its_pool_slot(
    chaos_deployment: Deployment, fault: Callable[[Deployment, client.V1Pod], None]
) -> None:
    """Scenario 3. A worker killed without warning cannot give its slot back: run monitoring's
    free_slots_after_run_end_seconds sweep does, or the retry would wait for it forever."""
    api = chaos_deployment.api
    parent_id = api.launch_run(SALES_JOB, {SLOW_MODEL_TAG: str(HOLD_SLOT_SECONDS)})
    chaos_deployment.runs_to_save.append(parent_id)

    def slot_held_mid_step() -> tuple[bool, object]:
        info = api.pool_slots_in_use(SALES_POOL)
        holders = {slot["runId"] for slot in info["claimedSlots"]}
        done = set(api.materializations(parent_id))
        return parent_id in holders and done == SALES_SNAPSHOTS - {SLOW_SNAPSHOT}, (info, sorted(done))

    wait_until(
        "the parent's snapshot step to hold the pool slot, mid-step", slot_held_mid_step, SLOT_CLAIMED_TIMEOUT_SECONDS
    )
    pod = running_run_pod(chaos_deployment, parent_id)
    fault_at = time.time()
    fault(chaos_deployment, pod)

    group = wait_one_retry_finished(api, parent_id)
    retry = group[-1]
    assert retry.status == "SUCCESS", failure_messages(api, retry.run_id)
    print(
        f"\n[{fault.__name__} holding the {SALES_POOL} slot] fault -> retry created "
        f"{retry.creation_time - fault_at:.1f}s, -> retry started {retry.start_time - fault_at:.1f}s, "
        f"-> group SUCCESS {retry.end_time - fault_at:.1f}s"
    )
    assert group[0].status == "FAILURE"
    assert retry.tags["dagster/retry_strategy"] == "FROM_ASSET_FAILURE"
    assert retry.asset_selection == {SLOW_SNAPSHOT}
    assert materialization_counts(api, group) == {snapshot: 1 for snapshot in SALES_SNAPSHOTS}
    info = wait_pool_idle(api, SALES_POOL)
    assert info["slotCount"] == 1
    one_current_version_per_key(chaos_deployment.warehouse)


# No fault: the fast suite proves same-pool runs apart through the real daemon and run queue.
@pytest.mark.full_suite
def test_runs_of_one_pool_never_overlap_other_pools_do(chaos_deployment: Deployment) -> None:
    """Scenario 4, at the chart's limit of 1 per snapshot pool."""
    api = chaos_deployment.api
    run_ids = launch_together(api, [SALES_JOB, SALES_JOB, INVENTORY_JOB])
    chaos_deployment.runs_to_save.extend(run_ids)
    runs = wait_runs_finished(api, run_ids)
    assert [run.status for run in runs] == ["SUCCESS"] * 3, [failure_messages(api, r.run_id) for r in runs]
    sales = [api.step_interval(run_id, SALES_STEP) for run_id in run_ids[:2]]
    inventory = api.step_interval(run_ids[2], INVENTORY_STEP)
    assert not overlaps(*sales), f"two {SALES_POOL} steps overlapped: {sales}"
    assert any(overlaps(inventory, interval) for interval in sales), (
        f"the inventory snapshot never ran alongside a sales snapshot: {inventory} vs {sales}"
    )
    wait_pool_idle(api, SALES_POOL)


@pytest.fixture
def snapshots_exist(chaos_deployment: Deployment) -> None:
    """Both domains' snapshots built once: two first builds of one snapshot at the same time would
    both try to create its table."""
    api = chaos_deployment.api
    run_ids = [api.launch_run(SALES_JOB), api.launch_run(INVENTORY_JOB)]
    runs = wait_runs_finished(api, run_ids)
    assert [run.status for run in runs] == ["SUCCESS"] * 2, [failure_messages(api, r.run_id) for r in runs]


@pytest.fixture
def pool_limit_values(chaos_deployment: Deployment, tmp_path: Path) -> Iterator[Callable[[int | None], None]]:
    """Sets the sales pool's limit with `helm upgrade` (the same hack/up.sh install step); puts the
    chart's limit back at the end."""

    def upgrade(limit: int | None) -> None:
        more = ()
        if limit is not None:
            values = tmp_path / f"sales-pool-{limit}.yaml"
            values.write_text(yaml.safe_dump({"concurrency": {"pools": {"limits": {SALES_POOL: limit}}}}))
            more = (values,)
        run_up(chaos_deployment.cluster, chaos_deployment.namespace, "install", more)

    yield upgrade
    upgrade(None)


# No fault, and three `helm upgrade`s; the fast suite runs the chart's pools hook of an upgrade on
# a real PostgreSQL (tests/chart/test_chart_hooks_on_postgresql.py).
@pytest.mark.full_suite
def test_pool_limit_changed_by_helm_upgrade_takes_effect(
    chaos_deployment: Deployment, snapshots_exist: None, pool_limit_values: Callable[[int | None], None]
) -> None:
    """Scenario 4: raise the limit to 2 (two sales snapshots then overlap), lower it back to 1 (they
    no longer do); no pod of the release is restarted for it, by hand or by the chart."""
    api = chaos_deployment.api
    components = ("daemon", "webserver", "code-location", "postgresql")
    pods_before = {c: {p.metadata.uid for p in chaos_deployment.component_pods(c)} for c in components}

    for limit, must_overlap in ((2, True), (1, False)):
        pool_limit_values(limit)
        assert api.pool_slots_in_use(SALES_POOL)["slotCount"] == limit
        run_ids = launch_together(api, [SALES_JOB, SALES_JOB])
        chaos_deployment.runs_to_save.extend(run_ids)
        runs = wait_runs_finished(api, run_ids)
        assert [run.status for run in runs] == ["SUCCESS"] * 2, [failure_messages(api, r.run_id) for r in runs]
        sales = [api.step_interval(run_id, SALES_STEP) for run_id in run_ids]
        assert overlaps(*sales) is must_overlap, f"limit {limit}: sales snapshot steps {sales}"
        wait_pool_idle(api, SALES_POOL)

    pods_after = {c: {p.metadata.uid for p in chaos_deployment.component_pods(c)} for c in components}
    assert pods_after == pods_before
    one_current_version_per_key(chaos_deployment.warehouse)
