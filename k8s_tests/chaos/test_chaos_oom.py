"""Chaos scenarios of a run pod that meets its memory limit (issue 12, part 2): the kernel's OOM
killer, not a test, kills the process. The run fails once, its failure says "Out of memory" with the
limit and the value that raises it (in the run's events, as the UI and the GraphQL API show them),
it is tagged dagster-dbt-k8s/out_of_memory, and it is not retried: a retry with the same limit
would meet it again. Green, holding the reference release, is unchanged. dagster_code/out_of_memory.py has the policy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from k8s_tests.chaos.release_checks import Reference
from k8s_tests.harness.dagster_api import DagsterApi, Run
from k8s_tests.harness.deployment import KIND_VALUES, Deployment
from k8s_tests.harness.example import GREEN_PROMOTED, MEMORY_HOG_TAG, RELEASE_JOB
from k8s_tests.harness.release import failure_messages, wait_run_finished
from tests.support import GREEN, MARTS, query, release_log

# The run pods' memory limit the chaos deployment was installed with.
RUN_POD_MEMORY_LIMIT = yaml.safe_load(Path(KIND_VALUES).read_text())["runLauncher"]["resources"]["limits"]["memory"]
# Held in dbt's process by the release's pre-hook: past the limit on its own.
DBT_HOG_MB = 2048
# A run pod limit below what the run worker needs to import its code location.
WORKER_MEMORY_LIMIT = "96Mi"
# The worker dies before it reports its start: run monitoring fails the run after its start
# timeout (ci/kind-values.yaml), then a poll.
WORKER_OOM_FAILS_TIMEOUT_SECONDS = 360
DBT_OOM_FAILS_TIMEOUT_SECONDS = 420
# How long a failed run is watched for a retry (the retry daemon acts within seconds).
NO_RETRY_WATCH_SECONDS = 30


def green_exactly(warehouse: str) -> dict[str, list[tuple]]:
    return {mart: sorted(query(warehouse, f"select * from {GREEN}.{mart}"), key=repr) for mart in MARTS}


def assert_failed_for_memory_and_not_retried(api: DagsterApi, run: Run, expected: list[str]) -> str:
    assert run.status == "FAILURE", run.status
    messages = failure_messages(api, run.run_id)
    for text in expected:
        assert text in messages, f"{text!r} not in the run's failure:\n{messages}"
    deadline = time.monotonic() + NO_RETRY_WATCH_SECONDS
    while time.monotonic() < deadline:
        assert api.children(run.run_id) == [], "a run that ran out of memory was retried"
        time.sleep(3)
    tags = api.run(run.run_id).tags
    assert tags.get("dagster-dbt-k8s/out_of_memory") == "true", tags
    assert tags.get("dagster/max_retries") == "0", tags
    assert tags.get("dagster/will_retry") == "false", tags
    return messages


def test_dbt_killed_for_memory_fails_the_release_saying_so_without_retry(
    chaos_deployment: Deployment, reference: Reference
) -> None:
    """dbt, the largest process of the run pod, is killed by the kernel: the worker survives and
    fails the step saying dbt ran out of memory (the container's memory cgroup counted the kill)."""
    api = chaos_deployment.api
    warehouse = chaos_deployment.warehouse
    green_before, log_before = green_exactly(warehouse), release_log(warehouse)
    start = time.monotonic()
    run_id = api.launch_run(RELEASE_JOB, {MEMORY_HOG_TAG: str(DBT_HOG_MB)})
    chaos_deployment.runs_to_save.append(run_id)
    run = wait_run_finished(api, run_id, DBT_OOM_FAILS_TIMEOUT_SECONDS, "a release whose dbt runs out of memory")
    failed_after = time.monotonic() - start
    assert run.tags.get("dagster/failure_reason") == "STEP_FAILURE", run.tags
    assert_failed_for_memory_and_not_retried(
        api, run, ["Out of memory: dbt was killed", f"({RUN_POD_MEMORY_LIMIT})", "runLauncher.resources.limits.memory"]
    )
    assert GREEN_PROMOTED not in api.materializations(run_id)
    assert green_exactly(warehouse) == green_before
    assert release_log(warehouse) == log_before
    print(f"\n[oom: dbt] launch -> run FAILURE {failed_after:.0f}s; no retry in {NO_RETRY_WATCH_SECONDS}s")


# Mostly a wait for run monitoring's start timeout: CI runs the OOM kill with dbt's case above.
@pytest.mark.full_suite
def test_run_worker_oomkilled_fails_the_run_with_the_container_reason_without_retry(
    chaos_deployment: Deployment, reference: Reference
) -> None:
    """The run worker itself is killed (its pod's limit lowered for this run by the
    dagster-k8s/config tag): Kubernetes reports the container OOMKilled, and run monitoring fails
    the run with that reason and the limit first in its message."""
    api = chaos_deployment.api
    warehouse = chaos_deployment.warehouse
    green_before, log_before = green_exactly(warehouse), release_log(warehouse)
    memory = {"memory": WORKER_MEMORY_LIMIT}
    k8s_config = {"container_config": {"resources": {"requests": memory, "limits": memory}}}
    start = time.monotonic()
    run_id = api.launch_run(RELEASE_JOB, {"dagster-k8s/config": json.dumps(k8s_config)})
    chaos_deployment.runs_to_save.append(run_id)
    run = wait_run_finished(api, run_id, WORKER_OOM_FAILS_TIMEOUT_SECONDS, "a release whose worker is OOMKilled")
    failed_after = time.monotonic() - start
    messages = assert_failed_for_memory_and_not_retried(
        api, run, ["Out of memory: the run worker", f"({WORKER_MEMORY_LIMIT})", "OOMKilled"]
    )
    assert api.materializations(run_id) == {}
    assert green_exactly(warehouse) == green_before
    assert release_log(warehouse) == log_before
    print(
        f"\n[oom: run worker] launch -> run FAILURE {failed_after:.0f}s; no retry in {NO_RETRY_WATCH_SECONDS}s; "
        f"message: {messages.splitlines()[0][:200]}"
    )
