"""Chaos scenarios of a blue/green release on kind (issue 5): the run pod evicted (1) or killed
without warning (2) mid-build is retried from asset failure, building exactly what was missing,
while a reader of green never sees a mix of releases (10); a failing dbt test (5) is not retried
and leaves green untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest
from kubernetes import client

from k8s_tests.chaos.release_checks import (
    PARENT_FAILS_TIMEOUT_SECONDS,
    Reference,
    assert_group_exactly_once,
    assert_reader_saw_one_release_at_a_time,
    launch_and_reach_slow_model,
    wait_one_retry_finished,
)
from k8s_tests.harness.deployment import Deployment
from k8s_tests.harness.example import GREEN_PROMOTED, RELEASE_JOB
from k8s_tests.harness.faults import evict, kill_without_grace, running_run_pod
from k8s_tests.harness.release import GreenReader, run_release, wait_run_finished
from tests.support import BLUE, GREEN, MARTS, query, release_log, schema_contents

# How long a run that must not be retried is watched for a retry (the daemon acts within seconds).
NO_RETRY_WATCH_SECONDS = 30


@pytest.mark.parametrize(
    ("fault", "expected_failure_reasons"),
    [
        # Scenario 1: the worker gets SIGTERM and reports its own termination. CI evicts in the
        # drain scenario (9) and on another dbt project (test_chaos_any_project.py) instead.
        pytest.param(evict, {"UNEXPECTED_TERMINATION"}, id="eviction", marks=pytest.mark.full_suite),
        # Scenario 2: the worker cannot report. Run monitoring finds the failed Job and fails the
        # run, without a failure reason tag in dagster 1.13 (UNEXPECTED_TERMINATION would mean the
        # worker reported after all).
        pytest.param(kill_without_grace, {None, "RUN_WORKER_FAILED"}, id="kill-without-grace"),
    ],
)
def test_run_pod_fault_retried_from_asset_failure(
    chaos_deployment: Deployment,
    reference: Reference,
    green_reader: GreenReader,
    fault: Callable[[Deployment, client.V1Pod], None],
    expected_failure_reasons: set[str | None],
) -> None:
    """Scenarios 1 and 2 (and 10): the parent fails for the expected reason and exactly one
    FROM_ASSET_FAILURE retry finishes the release exactly once, while green never mixes releases."""
    api = chaos_deployment.api
    parent_id = launch_and_reach_slow_model(chaos_deployment)
    pod = running_run_pod(chaos_deployment, parent_id)
    fault_at = time.time()
    fault(chaos_deployment, pod)

    parent = wait_run_finished(api, parent_id, PARENT_FAILS_TIMEOUT_SECONDS, "the faulted parent run")
    assert parent.status == "FAILURE"
    assert parent.tags.get("dagster/failure_reason") in expected_failure_reasons, parent.tags
    group = wait_one_retry_finished(api, parent_id)
    green_reader.stop()
    # Read once the retry exists: the failed worker tags will_retry just after it records the
    # failure (an evicted one may not get to it, and the daemon then decides and tags).
    assert group[0].tags.get("dagster/will_retry") == "true", group[0].tags
    retry = group[-1]
    print(
        f"\n[{fault.__name__}] fault -> parent failed: {parent.end_time - fault_at:.1f}s; "
        f"fault -> retry run created: {retry.creation_time - fault_at:.1f}s; "
        f"fault -> retry run started: {retry.start_time - fault_at:.1f}s; "
        f"fault -> group SUCCESS: {retry.end_time - fault_at:.1f}s; "
        f"parent failure_reason={parent.tags.get('dagster/failure_reason')}; green reader: {green_reader.summary()}"
    )
    assert_group_exactly_once(chaos_deployment, reference, group)
    assert_reader_saw_one_release_at_a_time(green_reader, parent_id)


def test_failing_dbt_test_not_retried_green_unchanged(chaos_deployment: Deployment, reference: Reference) -> None:
    api = chaos_deployment.api
    warehouse = chaos_deployment.warehouse
    green_before = schema_contents(warehouse, GREEN)
    green_before_exact = {mart: sorted(query(warehouse, f"select * from {GREEN}.{mart}"), key=repr) for mart in MARTS}
    log_before = release_log(warehouse)
    (order_id,) = query(warehouse, "select min(order_id) from raw.orders where status <> 'returned'")[0]
    negate = "update raw.orders set quantity = -quantity where order_id = %s"
    with psycopg.connect(warehouse) as conn:
        conn.execute(negate, (order_id,))
    try:
        start = time.monotonic()
        run = run_release(api, RELEASE_JOB)
        chaos_deployment.runs_to_save.append(run.run_id)
        assert run.status == "FAILURE"
        assert run.tags.get("dagster/failure_reason") == "STEP_FAILURE", run.tags
        assert GREEN_PROMOTED not in api.materializations(run.run_id)

        # The retry daemon acts within seconds of a failure; watch a bounded while for one.
        deadline = time.monotonic() + NO_RETRY_WATCH_SECONDS
        while time.monotonic() < deadline:
            assert api.children(run.run_id) == [], "a failing dbt test (a step failure) was retried"
            time.sleep(3)
        assert api.run(run.run_id).tags.get("dagster/will_retry") in (None, "false")
        print(
            f"\n[failing dbt test] release FAILURE, no retry in {NO_RETRY_WATCH_SECONDS}s; "
            f"{time.monotonic() - start:.0f}s"
        )

        assert {
            mart: sorted(query(warehouse, f"select * from {GREEN}.{mart}"), key=repr) for mart in MARTS
        } == green_before_exact
        assert schema_contents(warehouse, GREEN) == green_before
        assert release_log(warehouse) == log_before
        blue_ids = {row[0] for row in query(warehouse, f"select distinct release_id from {BLUE}.fct_orders")}
        assert blue_ids == {run.run_id}
    finally:
        with psycopg.connect(warehouse) as conn:
            conn.execute(negate, (order_id,))
