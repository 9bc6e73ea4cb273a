"""Concurrency pools through the real run queue and daemon: two runs of one snapshot pool
never overlap, and the pool ends with no slot in use."""

import dagster as dg

from tests.daemon import step_intervals
from tests.support import load_raw
from tests.waiting import wait_until

# Two runs one after the other, each a run worker and dbt (and, before the in-process executor, a
# step process): about 450 s in a CI run
# where the image builds shared the two cores, so 300 s was not enough there.
RUN_TIMEOUT_SECONDS = 900


def _finished(instance: dg.DagsterInstance, run_ids: list[str]) -> tuple[bool, object]:
    runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
    finished = all(run.is_finished for run in runs)
    return finished, runs if finished else [run.status for run in runs]


def test_same_pool_snapshot_runs_never_overlap(instance, warehouse, daemon):
    load_raw(warehouse)

    run_ids = [daemon.launch(instance, "sales_snapshots_job") for _ in range(2)]

    runs = wait_until("both sales snapshot runs to finish", lambda: _finished(instance, run_ids), RUN_TIMEOUT_SECONDS)
    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    (first_start, first_end), (second_start, second_end) = sorted(
        step_intervals(instance, run_id, "dbt_snapshots_sales") for run_id in run_ids
    )
    assert first_end <= second_start, "two sales snapshot steps ran at the same time"
    # Launched together, they were kept apart by the pool: either the queue held the second
    # run back (the run coordinator counts pool slots with op granularity) or its step
    # waited for the slot.
    info = instance.event_log_storage.get_concurrency_info("sales-snapshots")
    assert info.slot_count == 1
    assert info.active_slot_count == 0
