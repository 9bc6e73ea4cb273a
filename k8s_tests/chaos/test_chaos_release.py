"""Chaos scenarios of a blue/green release on kind (issue 5): the run pod evicted (1) or killed
without warning (2) mid-build is retried from asset failure, building exactly what was missing,
while a reader of green never sees a mix of releases (10); a failing dbt test (5) is not retried
and leaves green untouched.

The slow-model tag makes `int_orders_enriched` sleep before it builds, after the staging models
and `release/blue_prepared` are materialized: the fault lands in that window.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from kubernetes import client

from k8s_tests.chaos.dagster_api import Run
from k8s_tests.chaos.fixtures import Deployment
from k8s_tests.chaos.release_checks import (
    DONE_BEFORE_FAULT,
    GREEN_PROMOTED,
    RELEASE_JOB,
    RELEASE_TIMEOUT_SECONDS,
    SLOW_MODEL,
    SLOW_MODEL_TAG,
    GreenReader,
    failure_messages,
    materialization_counts,
    run_release,
    wait_run_finished,
)
from k8s_tests.cluster_fixtures import wait_until
from tests.support import BLUE, GREEN, MARTS, green_release_ids, query, release_log, schema_contents

SLOW_MODEL_SECONDS = 60
# The parent reaches the slow model after its pod starts and staging builds.
REACH_SLOW_MODEL_TIMEOUT_SECONDS = 420
PARENT_FAILS_TIMEOUT_SECONDS = 180
RETRY_CREATED_TIMEOUT_SECONDS = 180
# How long a run that must not be retried is watched for a retry (the daemon acts within seconds).
NO_RETRY_WATCH_SECONDS = 45


@dataclass(frozen=True)
class Reference:
    """An uninterrupted release: what green must hold after any faulted one (release_id aside)."""

    run: Run
    green: dict[str, list[tuple]]
    job_assets: frozenset[str]


def reset_release_schemas(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        for schema in ("green", "blue", "blue_swap"):
            conn.execute(f"drop schema if exists {schema} cascade")


@pytest.fixture(scope="module")
def reference(chaos_deployment: Deployment) -> Reference:
    """From empty release schemas, one uninterrupted release; its green is the expected content.
    Later releases are promoted over it, so the green reader always has an old release to see."""
    api = chaos_deployment.api
    reset_release_schemas(chaos_deployment.warehouse)
    run = run_release(api)
    chaos_deployment.runs_to_save.append(run.run_id)
    assert run.status == "SUCCESS", failure_messages(api, run.run_id)
    job_assets = api.job_asset_keys(RELEASE_JOB)
    assert set(api.materializations(run.run_id)) == job_assets
    return Reference(run=run, green=schema_contents(chaos_deployment.warehouse, GREEN), job_assets=job_assets)


@pytest.fixture
def green_reader(chaos_deployment: Deployment) -> Iterator[GreenReader]:
    reader = GreenReader(chaos_deployment.warehouse)
    reader.start()
    yield reader
    reader.stop()


def running_run_pod(deployment: Deployment, run_id: str) -> client.V1Pod:
    def probe() -> tuple[bool, object]:
        pods = deployment.run_pods(run_id)
        running = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        return len(running) == 1, running[0] if running else [(p.metadata.name, p.status.phase) for p in pods]

    return wait_until(f"the run pod of {run_id} to be Running", probe, 60)


def launch_and_reach_slow_model(deployment: Deployment) -> tuple[str, set[str]]:
    api = deployment.api
    parent_id = api.launch_run(RELEASE_JOB, {SLOW_MODEL_TAG: str(SLOW_MODEL_SECONDS)})
    deployment.runs_to_save.append(parent_id)

    def probe() -> tuple[bool, object]:
        done = set(api.materializations(parent_id))
        run = api.run(parent_id)
        assert not run.finished, f"the parent run ended {run.status} before the fault"
        return done >= DONE_BEFORE_FAULT, (run.status, sorted(done))

    wait_until("the parent run to build staging and reach the slow model", probe, REACH_SLOW_MODEL_TIMEOUT_SECONDS)
    done = set(api.materializations(parent_id))
    assert SLOW_MODEL not in done, f"{SLOW_MODEL} built before the fault: the window was missed"
    return parent_id, done


def evict(deployment: Deployment, pod: client.V1Pod) -> None:
    """policy/v1 Eviction: SIGTERM, then the pod's termination grace period."""
    deployment.core_v1.create_namespaced_pod_eviction(
        pod.metadata.name,
        deployment.namespace,
        client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=deployment.namespace)),
    )


def kill_without_grace(deployment: Deployment, pod: client.V1Pod) -> None:
    """SIGKILL the run worker's container on its node (`crictl stop --timeout 0` skips SIGTERM), then
    delete the pod with grace period 0. A delete with grace 0 alone still lets the kubelet send
    SIGTERM first, and the worker then often reports its own termination: not the case under test."""
    (status,) = pod.status.container_statuses
    container_id = status.container_id.split("://", 1)[1]
    subprocess.run(
        ["docker", "exec", pod.spec.node_name, "crictl", "stop", "--timeout", "0", container_id],
        check=True, capture_output=True, text=True, timeout=60,
    )
    deployment.core_v1.delete_namespaced_pod(
        pod.metadata.name, deployment.namespace, body=client.V1DeleteOptions(grace_period_seconds=0)
    )


def assert_recovered_exactly_once(
    deployment: Deployment,
    reference: Reference,
    reader: GreenReader,
    parent_id: str,
    fault_at: float,
    expected_failure_reasons: set[str | None],
    label: str,
) -> None:
    """The assertions of scenarios 1 and 2 (and 10), after the fault hit the parent's pod."""
    api = deployment.api
    parent = wait_run_finished(api, parent_id, PARENT_FAILS_TIMEOUT_SECONDS, "the faulted parent run")
    assert parent.status == "FAILURE"
    assert parent.tags.get("dagster/failure_reason") in expected_failure_reasons, parent.tags
    assert parent.tags.get("dagster/will_retry") == "true", parent.tags

    def retry_created() -> tuple[bool, object]:
        children = api.children(parent_id)
        return bool(children), children or api.run(parent_id).tags

    (retry,) = wait_until("the retry daemon to create one retry run", retry_created, RETRY_CREATED_TIMEOUT_SECONDS)
    retry = wait_run_finished(api, retry.run_id, RELEASE_TIMEOUT_SECONDS, "the retry run")
    assert retry.status == "SUCCESS", failure_messages(api, retry.run_id)
    reader.stop()

    fault_to_retry_created = retry.creation_time - fault_at
    fault_to_group_success = retry.end_time - fault_at
    print(
        f"\n[{label}] fault -> retry run created: {fault_to_retry_created:.1f}s; "
        f"fault -> retry run started: {retry.start_time - fault_at:.1f}s; "
        f"fault -> group SUCCESS: {fault_to_group_success:.1f}s; "
        f"parent failure_reason={parent.tags.get('dagster/failure_reason')}; green reader: {reader.summary()}"
    )

    group = api.run_group(parent_id)
    assert [run.run_id for run in group] == [parent_id, retry.run_id]
    assert api.children(retry.run_id) == []
    assert retry.tags["dagster/retry_strategy"] == "FROM_ASSET_FAILURE"
    assert retry.tags["dagster/root_run_id"] == parent_id
    assert retry.tags["dagster/parent_run_id"] == parent_id
    by_parent = set(api.materializations(parent_id))
    assert retry.asset_selection == reference.job_assets - by_parent
    counts = materialization_counts(api, group)
    assert set(counts) == reference.job_assets
    # Nothing built twice; the model in flight at the fault had not reported, so once as well.
    assert {key: n for key, n in counts.items() if n > 1} == {}
    assert counts[GREEN_PROMOTED] == 1

    warehouse = deployment.warehouse
    assert schema_contents(warehouse, GREEN) == reference.green
    assert green_release_ids(warehouse) == {mart: {parent_id} for mart in MARTS}
    assert [release for release, _ in release_log(warehouse)].count(parent_id) == 1
    # Scenario 10: one statement over the four marts never saw two releases at once.
    assert reader.snapshots > 0 and not reader.errors, reader.summary()
    assert reader.mixes == [], reader.mixes[:5]
    assert reader.seen_ids[-1] == parent_id, reader.summary()


def test_run_pod_evicted_retry_skips_materialized(
    chaos_deployment: Deployment, reference: Reference, green_reader: GreenReader
) -> None:
    parent_id, _ = launch_and_reach_slow_model(chaos_deployment)
    pod = running_run_pod(chaos_deployment, parent_id)
    fault_at = time.time()
    evict(chaos_deployment, pod)
    assert_recovered_exactly_once(
        chaos_deployment, reference, green_reader, parent_id, fault_at, {"UNEXPECTED_TERMINATION"}, "eviction"
    )


def test_run_pod_killed_without_grace_detected_and_retried(
    chaos_deployment: Deployment, reference: Reference, green_reader: GreenReader
) -> None:
    parent_id, _ = launch_and_reach_slow_model(chaos_deployment)
    pod = running_run_pod(chaos_deployment, parent_id)
    fault_at = time.time()
    kill_without_grace(chaos_deployment, pod)
    # The worker cannot report: run monitoring finds the failed Job and fails the run, without a
    # failure reason tag in dagster 1.13 (UNEXPECTED_TERMINATION would mean the worker reported).
    assert_recovered_exactly_once(
        chaos_deployment,
        reference,
        green_reader,
        parent_id,
        fault_at,
        {None, "RUN_WORKER_FAILED"},
        "SIGKILL + delete --grace-period=0",
    )


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
        run = run_release(api)
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
        print(f"\n[failing dbt test] release FAILURE, no retry in {NO_RETRY_WATCH_SECONDS}s; {time.monotonic() - start:.0f}s")

        assert {mart: sorted(query(warehouse, f"select * from {GREEN}.{mart}"), key=repr) for mart in MARTS} == green_before_exact
        assert schema_contents(warehouse, GREEN) == green_before
        assert release_log(warehouse) == log_before
        blue_ids = {row[0] for row in query(warehouse, f"select distinct release_id from {BLUE}.fct_orders")}
        assert blue_ids == {run.run_id}
    finally:
        with psycopg.connect(warehouse) as conn:
            conn.execute(negate, (order_id,))
