"""Chaos scenarios of a blue/green release on kind (issue 5): the run pod evicted (1) or killed
without warning (2) mid-build is retried from asset failure, building exactly what was missing,
while a reader of green never sees a mix of releases (10); a failing dbt test (5) is not retried
and leaves green untouched. Every unpartitioned asset launched as the UI's "Materialize all"
launches it, during a release (issue 28), waits in the queue for the release to end: it selects the
release's assets, so it is a release too. Last, the Dagster UI in a real browser (issue 13) shows
the retried release as one run group, the asset groups and the pools.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from kubernetes import client

from dagster_code.run_coordinator import RELEASE_TAG, RELEASE_TAG_VALUE
from k8s_tests.chaos.release_checks import (
    PARENT_FAILS_TIMEOUT_SECONDS,
    Reference,
    assert_group_exactly_once,
    assert_reader_saw_one_release_at_a_time,
    launch_and_reach_slow_model,
    wait_one_retry_finished,
)
from k8s_tests.harness.browser import UI_ARTIFACTS_DIR, BrowserMissing, dagster_ui
from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.dagster_api import REPOSITORY_NAME, DagsterApi, Run
from k8s_tests.harness.deployment import EXTRA_VALUES_FILES, KIND_VALUES, Deployment, chart_values
from k8s_tests.harness.example import BLUE_PREPARED, GREEN_PROMOTED, RELEASE_JOB, SLOW_MODEL_TAG
from k8s_tests.harness.faults import evict, kill_without_grace, running_run_pod
from k8s_tests.harness.release import (
    RELEASE_TIMEOUT_SECONDS,
    GreenReader,
    failure_messages,
    run_release,
    wait_run_finished,
)
from tests.support import BLUE, GREEN, MARTS, query, release_log, schema_contents

# How long a run that must not be retried is watched for a retry (the daemon acts within seconds).
NO_RETRY_WATCH_SECONDS = 30
# The release the "Materialize all" launch meets: slow enough that the launch is queued behind it
# for a while, and seen queued by several polls.
RELEASE_IN_THE_WAY_SLOW_MODEL_SECONDS = 30
RELEASE_STARTED_TIMEOUT_SECONDS = 300
QUEUED_POLL_SECONDS = 3


@pytest.mark.parametrize(
    ("fault", "expected_failure_reasons"),
    [
        # Scenario 1: the worker gets SIGTERM and reports its own termination. CI evicts in the
        # drain scenario (9) and on another dbt project (test_chaos_any_project.py) instead.
        pytest.param(evict, {"UNEXPECTED_TERMINATION"}, id="eviction", marks=pytest.mark.full_suite),
        # Scenario 2: the worker cannot report. Run monitoring finds the failed Job and fails the
        # run, without a failure reason tag in dagster 1.13 (UNEXPECTED_TERMINATION would mean the
        # worker reported after all). CI SIGKILLs a worker in scenario 3 (holding a pool slot),
        # and loses one without a word in the node-loss and partition scenarios instead.
        pytest.param(
            kill_without_grace, {None, "RUN_WORKER_FAILED"}, id="kill-without-grace", marks=pytest.mark.full_suite
        ),
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


def test_materialize_all_during_a_release_queued_until_it_ends(chaos_deployment: Deployment) -> None:
    """Issue 28: every unpartitioned asset of the example (the release's assets among them) launched
    through the implicit asset job, as the UI's "Materialize all" does, while a release runs: the
    run coordinator tags it a release, so the chart's limit of one run per release-tag value keeps
    it QUEUED until the release ends; then it runs, and both succeed."""
    api = chaos_deployment.api
    assets = api.unpartitioned_asset_keys()
    assert {BLUE_PREPARED, GREEN_PROMOTED} < assets, sorted(assets)
    release_id = api.launch_run(RELEASE_JOB, {SLOW_MODEL_TAG: str(RELEASE_IN_THE_WAY_SLOW_MODEL_SECONDS)})
    chaos_deployment.runs_to_save.append(release_id)
    wait_until(
        f"the release {release_id} to start",
        lambda: ((run := api.run(release_id)).status == "STARTED", run.status),
        RELEASE_STARTED_TIMEOUT_SECONDS,
    )
    all_id = api.launch_run(IMPLICIT_ASSET_JOB_NAME, assets=sorted(assets))
    chaos_deployment.runs_to_save.append(all_id)
    launched_at = time.time()
    queued_polls = 0
    deadline = time.monotonic() + RELEASE_TIMEOUT_SECONDS
    # Polled until the release ends: the launch must stay QUEUED all that while.
    while not (release := api.run(release_id)).finished:
        materialize_all = api.run(all_id)
        assert materialize_all.status == "QUEUED", (
            f"{all_id} is {materialize_all.status} while the release {release_id} is {release.status}"
        )
        queued_polls += 1
        assert time.monotonic() < deadline, f"the release {release_id} did not end in {RELEASE_TIMEOUT_SECONDS}s"
        time.sleep(QUEUED_POLL_SECONDS)
    assert release.status == "SUCCESS", failure_messages(api, release_id)
    assert queued_polls > 1, f"the release ended {queued_polls} poll(s) after the launch: nothing was seen queued"
    materialize_all = wait_run_finished(api, all_id, RELEASE_TIMEOUT_SECONDS, '"Materialize all" of the example')
    assert materialize_all.status == "SUCCESS", failure_messages(api, all_id)
    assert materialize_all.tags.get(RELEASE_TAG) == RELEASE_TAG_VALUE, materialize_all.tags
    assert release.tags.get(RELEASE_TAG) == RELEASE_TAG_VALUE, release.tags
    assert materialize_all.asset_selection == assets
    assert materialize_all.start_time >= release.end_time, (materialize_all.start_time, release.end_time)
    print(
        f"\n[materialize all during a release] queued {release.end_time - launched_at:.1f}s "
        f"({queued_polls} polls) until the release ended; release end -> run started: "
        f"{materialize_all.start_time - release.end_time:.1f}s; run took "
        f"{materialize_all.end_time - materialize_all.start_time:.1f}s; {len(assets)} assets"
    )


def test_ui_shows_asset_groups_release_run_group_and_pools(chaos_deployment: Deployment) -> None:
    """Issue 13: the Dagster UI, in headless Chromium through the webserver's port-forward, shows
    the asset graph with every asset group of the deployment, the latest retried release (left by
    the fault scenarios above) as one run group on its retry's page, and the pools page with the
    limits of the values the deployment was installed with. Screenshots: artifacts/ui/."""
    api = chaos_deployment.api
    groups = asset_groups(api)
    assert groups, f"the code location {api.location} has no asset groups"
    release_group = latest_retried_release(api)
    chaos_deployment.runs_to_save.append(release_group[0].run_id)
    limits = installed_pool_limits()
    shutil.rmtree(UI_ARTIFACTS_DIR, ignore_errors=True)  # no screenshot of an earlier session
    start = time.monotonic()
    try:
        with dagster_ui(chaos_deployment.webserver_url) as ui:
            shots = [
                ui.check_asset_graph(groups),
                ui.check_run_group([run.run_id for run in release_group]),
                ui.check_pools(limits),
            ]
    except BrowserMissing as error:
        pytest.fail(str(error))
    print(
        f"\n[ui] {len(groups)} asset groups, run group of {len(release_group)}, pools {limits}: "
        f"{time.monotonic() - start:.0f}s; screenshots: {', '.join(map(str, shots))}"
    )


def asset_groups(api: DagsterApi) -> set[str]:
    """The asset groups of the deployment's code location, as the webserver has it loaded."""
    data = api.query(
        "query ($selector: RepositorySelector!) { repositoryOrError(repositorySelector: $selector) {"
        " __typename ... on Repository { assetGroups { groupName } } ... on PythonError { message } } }",
        selector={"repositoryLocationName": api.location, "repositoryName": REPOSITORY_NAME},
    )["repositoryOrError"]
    assert data["__typename"] == "Repository", f"repository of {api.location}: {data}"
    return {group["groupName"] for group in data["assetGroups"]}


def latest_retried_release(api: DagsterApi) -> list[Run]:
    """The run group (oldest first) of the newest retry of RELEASE_JOB in the deployment."""
    data = api.query(
        "query ($filter: RunsFilter) { runsOrError(filter: $filter, limit: 50) {"
        " __typename ... on Runs { results { runId tags { key value } } } } }",
        filter={"pipelineName": RELEASE_JOB},
    )["runsOrError"]
    retries = [
        run["runId"] for run in data["results"] if any(tag["key"] == "dagster/parent_run_id" for tag in run["tags"])
    ]
    assert retries, (
        f"no retried {RELEASE_JOB} run in the deployment: this test reads the one "
        "test_run_pod_fault_retried_from_asset_failure leaves; run the whole module"
    )
    group = api.run_group(retries[0])
    assert len(group) >= 2 and group[-1].run_id == retries[0], [(run.run_id, run.status) for run in group]
    return group


def installed_pool_limits() -> dict[str, int]:
    """`concurrency.pools.limits` as Helm merged them for the chaos deployment: the chart's
    values.yaml, then each values file it was installed with (a null drops a pool)."""
    limits = dict(chart_values()["concurrency"]["pools"]["limits"])
    for path in (KIND_VALUES, *EXTRA_VALUES_FILES):
        values = yaml.safe_load(Path(path).read_text()) or {}
        limits.update(((values.get("concurrency") or {}).get("pools") or {}).get("limits") or {})
    return {pool: limit for pool, limit in limits.items() if limit is not None}
