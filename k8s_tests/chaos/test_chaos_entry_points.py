"""Issue 28 on kind: the guarantees hold on the ways users start work, not only on the platform's
own jobs.

1. A backfill launched as the UI's dialog launches one (its runs created by the daemon, tagged by
   nothing but the backfill): one of its runs is evicted mid-build; its retry, FROM_ASSET_FAILURE
   (given by the run coordinator, not by any job), builds its partition, and every partition is
   materialized exactly once.
2. `release/green_promoted` clicked alone in the UI after two releases: refused before it touches
   green, naming what its run group lacks; green and `_release_log` unchanged row for row, and
   nothing retried.

Issue 29: a GraphQL launch whose `dagster-k8s/config` run tag sets another command is failed when
it is submitted, naming the key and the values setting; no Job is created for it, and it is not
retried.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta

from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from example_extras.raw_data import EVENTS_START

from k8s_tests.chaos.release_checks import (
    CHAOS_SLOW_MODEL_SECONDS,
    PARENT_FAILS_TIMEOUT_SECONDS,
    wait_one_retry_finished,
)
from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.dagster_api import materialized_partitions
from k8s_tests.harness.deployment import Deployment
from k8s_tests.harness.example import GREEN_PROMOTED, RELEASE_JOB, SLOW_MODEL_TAG
from k8s_tests.harness.faults import evict, running_run_pod
from k8s_tests.harness.release import RELEASE_TIMEOUT_SECONDS, failure_messages, run_release, wait_run_finished
from tests.support import GREEN, MARTS, release_log, schema_contents, table_exists

# The example's regular incremental model, one run per daily partition in a backfill; its pre-hook
# sleeps under the slow-model tag.
PARTITIONED_MODEL = "fct_app_events"
BACKFILL_PARTITIONS = [(EVENTS_START + timedelta(days=day)).isoformat() for day in range(2)]
# Built first, alone: the backfill's runs then update an existing table. Two runs that both build
# an incremental model's table for the first time race on its creation ("relation already
# exists"), whatever the platform does about retries.
FIRST_BUILT_PARTITION = (EVENTS_START + timedelta(days=len(BACKFILL_PARTITIONS))).isoformat()
BACKFILL_RUNS_TIMEOUT_SECONDS = 180
# The evicted run's step has started dbt; the fault lands inside the pre-hook's sleep.
INTO_THE_SLEEP_SECONDS = 5
BACKFILL_TAG = "dagster/backfill"


def test_backfill_run_evicted_retry_builds_its_partition_once(chaos_deployment: Deployment) -> None:
    deployment, api = chaos_deployment, chaos_deployment.api
    first_id = api.launch_run(
        IMPLICIT_ASSET_JOB_NAME, {"dagster/partition": FIRST_BUILT_PARTITION}, [PARTITIONED_MODEL]
    )
    deployment.runs_to_save.append(first_id)
    first = wait_run_finished(api, first_id, RELEASE_TIMEOUT_SECONDS, f"{PARTITIONED_MODEL} {FIRST_BUILT_PARTITION}")
    assert first.status == "SUCCESS", failure_messages(api, first_id)
    backfill_id = api.launch_backfill(
        BACKFILL_PARTITIONS, [PARTITIONED_MODEL], tags={SLOW_MODEL_TAG: str(CHAOS_SLOW_MODEL_SECONDS)}
    )
    runs = wait_until(
        f"backfill {backfill_id} to create a run per partition ({BACKFILL_PARTITIONS})",
        lambda: (len(runs := api.runs_with_tag(BACKFILL_TAG, backfill_id)) >= len(BACKFILL_PARTITIONS), runs),
        BACKFILL_RUNS_TIMEOUT_SECONDS,
    )
    deployment.runs_to_save.extend(run.run_id for run in runs)
    # Nothing but the backfill tagged these runs: their retry strategy is the run coordinator's.
    assert {run.tags.get("dagster/retry_strategy") for run in runs} == {"FROM_ASSET_FAILURE"}, [r.tags for r in runs]
    parent = min(runs, key=lambda run: run.creation_time or 0)
    pod = running_run_pod(deployment, parent.run_id)

    def building() -> tuple[bool, object]:
        kinds = [event["__typename"] for event in api.events(parent.run_id)]
        return "ExecutionStepStartEvent" in kinds, kinds[-5:]

    wait_until(
        f"backfill run {parent.run_id} to start building {PARTITIONED_MODEL}", building, BACKFILL_RUNS_TIMEOUT_SECONDS
    )
    time.sleep(INTO_THE_SLEEP_SECONDS)
    assert not api.materializations(parent.run_id), "the partition was built before the fault: the window was missed"
    fault_at = time.time()
    evict(deployment, pod)

    failed = wait_run_finished(api, parent.run_id, PARENT_FAILS_TIMEOUT_SECONDS, "the evicted backfill run")
    assert failed.status == "FAILURE"
    assert failed.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION", failed.tags
    group = wait_one_retry_finished(api, parent.run_id)
    retry = group[-1]
    print(f"\n[backfill eviction] fault -> retry started: {retry.start_time - fault_at:.1f}s")
    assert retry.status == "SUCCESS", failure_messages(api, retry.run_id)
    assert retry.tags["dagster/retry_strategy"] == "FROM_ASSET_FAILURE"
    assert retry.tags[BACKFILL_TAG] == backfill_id
    # The partition (or partition range) the retry builds is its parent's.
    partition_tags = {key: value for key, value in parent.tags.items() if "partition" in key}
    assert partition_tags, parent.tags
    assert {key: value for key, value in retry.tags.items() if "partition" in key} == partition_tags
    assert retry.asset_selection == {PARTITIONED_MODEL}

    others = [run for run in runs if run.run_id != parent.run_id]
    for other in others:
        ended = wait_run_finished(api, other.run_id, RELEASE_TIMEOUT_SECONDS, "the backfill's other run")
        assert ended.status == "SUCCESS", failure_messages(api, other.run_id)
    partitions = Counter()
    for run in [*group, *others]:
        partitions.update(materialized_partitions(api.events(run.run_id)))
    assert partitions == dict.fromkeys(BACKFILL_PARTITIONS, 1), partitions


def test_green_promoted_launched_alone_is_refused_and_green_unchanged(chaos_deployment: Deployment) -> None:
    deployment, api = chaos_deployment, chaos_deployment.api
    while not table_exists(deployment.warehouse, GREEN, "_release_log") or len(release_log(deployment.warehouse)) < 2:
        release = run_release(api, RELEASE_JOB)
        assert release.status == "SUCCESS", failure_messages(api, release.run_id)
    green_before = schema_contents(deployment.warehouse, GREEN, MARTS)
    log_before = release_log(deployment.warehouse)

    # The UI's Materialize on the one asset.
    run_id = api.launch_run(IMPLICIT_ASSET_JOB_NAME, assets=[GREEN_PROMOTED])
    deployment.runs_to_save.append(run_id)
    run = wait_run_finished(api, run_id, RELEASE_TIMEOUT_SECONDS, f"{GREEN_PROMOTED} launched alone")
    messages = failure_messages(api, run_id)
    assert run.status == "FAILURE", messages
    assert "release/blue_prepared" in messages and RELEASE_JOB in messages, messages
    assert run.tags.get("dagster/failure_reason") == "STEP_FAILURE", run.tags
    assert run.tags.get("dagster/will_retry") == "false", run.tags
    assert schema_contents(deployment.warehouse, GREEN, MARTS) == green_before
    assert release_log(deployment.warehouse) == log_before


# What the daemon gets to do with a run in this time if it was queued: dequeue it (the chart's
# dequeue interval is 1 s) and create its Job; retry a failed run (its loop runs every few seconds).
NO_POD_WATCH_SECONDS = 20


def test_a_launch_whose_run_tag_sets_another_command_is_refused_and_gets_no_pod(chaos_deployment: Deployment) -> None:
    deployment, api = chaos_deployment, chaos_deployment.api
    command = {"container_config": {"command": ["sh", "-c", "env; ls /var/run/secrets"]}}
    run_id = api.launch_run(IMPLICIT_ASSET_JOB_NAME, {"dagster-k8s/config": json.dumps(command)}, [PARTITIONED_MODEL])
    deployment.runs_to_save.append(run_id)
    run = api.run(run_id)
    messages = failure_messages(api, run_id)
    assert run.status == "FAILURE", (run.status, messages)
    assert "container_config.command" in messages and "runLauncher.runTagK8sConfig.allowedKeys" in messages, messages
    assert run.tags.get("dagster/will_retry") == "false", run.tags
    time.sleep(NO_POD_WATCH_SECONDS)
    jobs = deployment.batch_v1.list_namespaced_job(deployment.namespace, label_selector=f"dagster/run-id={run_id}")
    assert not jobs.items, [job.metadata.name for job in jobs.items]
    assert not deployment.run_pods(run_id)
    assert not api.children(run_id), "the refused run was retried"
