"""Issue 10 on kind: a dbt project other than the example (tests/dbt_projects/acme: its own image,
no Python, configured by dagster.yml and dbt meta only) gets the same recovery. Its release's run
pod is evicted mid-build; the FROM_ASSET_FAILURE retry builds exactly what the parent had not, every
asset once, and green ends equal to an uninterrupted release.

Issue 11 on the same install: `helm upgrade` to another image and back. After each upgrade returns,
the webserver has the new image's definitions, and the runs it launches, and the retries the daemon
creates, run the new image; the second upgrade forces the order in which stale definitions were
seen (webserver and daemon up while the old code servers still serve).

Issue 11 again: an upgrade between a release's failure and its retry, to acme's next version
(k8s_tests/chaos/acme_next: stg_events' SQL changed, and fct_customer_events reads the change).
The retry runs the new code beside the parent's tables built by the old: it must refuse before
dbt changes anything, naming the model and both versions, and green must stay as it was; a new
run of the release then builds and promotes everything with the new code, as green's provenance
(`_release_log.built_by`) shows.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from k8s_tests.chaos.release_checks import (
    PARENT_FAILS_TIMEOUT_SECONDS,
    assert_group_exactly_once,
    launch_and_reach_slow_model,
    reference_release,
    wait_one_retry_finished,
)
from k8s_tests.harness.acme import ACME_RELEASE
from k8s_tests.harness.cluster import read_versions
from k8s_tests.harness.deployment import Deployment, image_values, run_up, wait_location_loaded
from k8s_tests.harness.faults import evict, running_run_pod
from k8s_tests.harness.release import failure_messages, run_release, wait_run_finished
from tests.support import GREEN, query, release_log, schema_contents

# The example's job that loads its raw data: in the example's image only.
EXAMPLE_ONLY_JOB = "raw_data_job"
RAW_DATA_TIMEOUT_SECONDS = 600
# How long the second upgrade holds the new code servers (an init container): the webserver and
# the daemon, restarted by the same upgrade, come up while the old code servers still serve.
HOLD_NEW_CODE_SERVERS_SECONDS = 60
# The paused model of the release that an upgrade lands beside: long enough for `helm upgrade
# --wait` to return while it sleeps; the eviction ends it.
PAUSE_THROUGH_AN_UPGRADE_SECONDS = 900
# What acme's next version changed (k8s_tests/chaos/acme_next): stg_events' SQL, and the paused
# model reads its new column.
CHANGED_MODEL, NEW_COLUMN = "stg_events", "weight"


def test_eviction_of_another_projects_release_retried_from_asset_failure(acme_deployment: Deployment) -> None:
    api = acme_deployment.api
    reference = reference_release(acme_deployment, ACME_RELEASE)
    assert ACME_RELEASE.paused_model in reference.job_assets, sorted(reference.job_assets)

    parent_id = launch_and_reach_slow_model(acme_deployment, ACME_RELEASE)
    pod = running_run_pod(acme_deployment, parent_id)
    # The run runs the project's own image, not the example's.
    assert [c.image for c in pod.spec.containers] == [read_versions()["ACME_PROJECT_IMAGE"]]
    fault_at = time.time()
    evict(acme_deployment, pod)

    parent = wait_run_finished(api, parent_id, PARENT_FAILS_TIMEOUT_SECONDS, "the evicted parent run")
    assert parent.status == "FAILURE"
    assert parent.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION", parent.tags
    group = wait_one_retry_finished(api, parent_id)
    assert group[0].tags.get("dagster/will_retry") == "true", group[0].tags
    retry = group[-1]
    print(
        f"\n[acme eviction] fault -> parent failed: {parent.end_time - fault_at:.1f}s; "
        f"fault -> retry started: {retry.start_time - fault_at:.1f}s; "
        f"fault -> group SUCCESS: {retry.end_time - fault_at:.1f}s; retry selection: {sorted(retry.asset_selection)}"
    )
    assert_group_exactly_once(acme_deployment, reference, group)


def upgrade(deployment: Deployment, image: str, values_dir: Path, pod: dict | None = None) -> None:
    """`helm upgrade --install --wait` (hack/up.sh's install step) to `image`, with the suite's
    values and `pod` as codeLocation.pod; returns when helm does, as a user's upgrade would."""
    values = image_values(image)
    values["codeLocation"]["pod"] = pod or {}
    path = values_dir / f"upgrade-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(values))
    run_up(deployment.cluster, deployment.namespace, "install", more_values=(path,))
    # The upgrade replaced the webserver's pods: the next request forwards to a current one.
    deployment.webserver.stop()


def assert_runs_image(deployment: Deployment, run_ids: list[str], image: str) -> None:
    for run_id in run_ids:
        run = deployment.api.run(run_id)
        assert run.tags.get("dagster/image") == image, (run_id, run.tags)
        pods = deployment.run_pods(run_id)
        assert pods, f"no pod of run {run_id}"
        assert {c.image for p in pods for c in p.spec.containers} == {image}, run_id


def assert_definitions_of(deployment: Deployment, example: bool) -> None:
    """The webserver has the example's definitions (its raw-data job; a release job without the
    project's paused model) or the project's (no raw-data job; that model in its release)."""
    jobs = deployment.api.job_names()
    assert (EXAMPLE_ONLY_JOB in jobs) == example, sorted(jobs)
    release_assets = deployment.api.job_asset_keys(ACME_RELEASE.job)
    assert (ACME_RELEASE.paused_model in release_assets) == (not example), sorted(release_assets)


def started_at(pod: client.V1Pod) -> float:
    (status,) = pod.status.container_statuses
    return status.state.running.started_at.timestamp()


def ready_at(pod: client.V1Pod) -> float:
    (ready,) = [c for c in pod.status.conditions if c.type == "Ready"]
    return ready.last_transition_time.timestamp()


# CI upgrades between a failure and its retry (the next test) instead.
@pytest.mark.full_suite
def test_upgrade_to_another_image_and_back_runs_the_image_just_deployed(
    acme_deployment: Deployment, tmp_path: Path
) -> None:
    deployment, api = acme_deployment, acme_deployment.api
    example_image, acme_image = read_versions()["PROJECT_IMAGE"], read_versions()["ACME_PROJECT_IMAGE"]

    # 1. To the example's image: its definitions, and a run launched at once runs its image.
    upgrade(deployment, example_image, tmp_path)
    wait_location_loaded(deployment)
    assert_definitions_of(deployment, example=True)
    run_id = api.launch_run(EXAMPLE_ONLY_JOB)
    deployment.runs_to_save.append(run_id)
    finished = wait_run_finished(api, run_id, RAW_DATA_TIMEOUT_SECONDS, f"{EXAMPLE_ONLY_JOB} after the upgrade")
    assert finished.status == "SUCCESS", failure_messages(api, run_id)
    assert_runs_image(deployment, [run_id], example_image)

    # 2. Back to the project's image, its new code servers held until the webserver and the daemon
    # run again: with one Service for every version they loaded the old server's definitions.
    hold = {
        "name": "hold",
        "image": acme_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sleep", str(HOLD_NEW_CODE_SERVERS_SECONDS)],
    }
    upgrade(deployment, acme_image, tmp_path, pod={"initContainers": [hold]})
    # The new version's code servers (an old one may not have begun terminating yet).
    code_servers = deployment.component_pods("code-location")
    new_code_servers = [p for p in code_servers if p.spec.containers[0].image == acme_image]
    assert new_code_servers, "no code server of the new version"
    code_ready = min(ready_at(p) for p in new_code_servers)
    for component in ("webserver", "daemon"):
        pods = deployment.component_pods(component)
        assert pods and all(started_at(p) < code_ready for p in pods), (
            f"the {component} did not start before the new code servers were ready: the order was not forced"
        )
    wait_location_loaded(deployment)
    assert_definitions_of(deployment, example=False)
    # A release launched at once, evicted: the daemon's retry runs the image just deployed too.
    parent_id = launch_and_reach_slow_model(deployment, ACME_RELEASE)
    parent_pod = running_run_pod(deployment, parent_id)
    # The eviction deletes the parent's pod: its image is checked before.
    assert [c.image for c in parent_pod.spec.containers] == [acme_image]
    evict(deployment, parent_pod)
    group = wait_one_retry_finished(api, parent_id)
    assert [run.status for run in group] == ["FAILURE", "SUCCESS"], [(r.run_id, r.status) for r in group]
    assert group[0].tags.get("dagster/image") == acme_image, group[0].tags
    assert_runs_image(deployment, [group[1].run_id], acme_image)


def test_upgrade_between_failure_and_retry_refuses_the_release_then_a_new_run_promotes_one_version(
    acme_deployment: Deployment, tmp_path: Path
) -> None:
    deployment, api = acme_deployment, acme_deployment.api
    acme_image, next_image = read_versions()["ACME_PROJECT_IMAGE"], read_versions()["ACME_NEXT_PROJECT_IMAGE"]
    warehouse = deployment.warehouse
    green_before = schema_contents(warehouse, GREEN, ACME_RELEASE.marts)
    log_before = release_log(warehouse)
    assert log_before, "no release in green before the scenario"

    # A release on acme's current image reaches its paused model; then the next version is deployed.
    parent_id = launch_and_reach_slow_model(deployment, ACME_RELEASE, PAUSE_THROUGH_AN_UPGRADE_SECONDS)
    parent_pod = running_run_pod(deployment, parent_id)
    assert [c.image for c in parent_pod.spec.containers] == [acme_image]
    run_up(deployment.cluster, deployment.namespace, "load", project_image=next_image)
    upgrade(deployment, next_image, tmp_path)
    wait_location_loaded(deployment)
    assert not api.run(parent_id).finished, "the parent ended before the fault: raise PAUSE_THROUGH_AN_UPGRADE_SECONDS"
    evict(deployment, parent_pod)

    group = wait_one_retry_finished(api, parent_id)
    parent, retry = group
    assert [parent.status, retry.status] == ["FAILURE", "FAILURE"], [(r.run_id, r.status) for r in group]
    assert parent.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION", parent.tags
    assert retry.tags.get("dagster/image") == next_image, retry.tags
    # Refused before dbt ran: nothing materialized, the message names the model and both versions.
    assert api.materializations(retry.run_id) == {}, api.materializations(retry.run_id)
    message = failure_messages(api, retry.run_id)
    assert "was built by two versions of the code" in message, message
    assert f"Launch {ACME_RELEASE.job} again" in message, message
    changed = [line for line in message.splitlines() if " built by code version " in line]
    assert [line.split(":")[0] for line in changed] == [CHANGED_MODEL], message
    assert parent_id in changed[0], message
    assert schema_contents(warehouse, GREEN, ACME_RELEASE.marts) == green_before
    assert release_log(warehouse) == log_before

    # What the message asks for: a new run builds and promotes every model with the new code.
    again = run_release(api, ACME_RELEASE.job)
    deployment.runs_to_save.append(again.run_id)
    assert again.status == "SUCCESS", failure_messages(api, again.run_id)
    assert_runs_image(deployment, [again.run_id], next_image)
    ((built_by,),) = query(
        warehouse, f"select built_by from {GREEN}._release_log where release_id = %s", (again.run_id,)
    )
    assert set(built_by) == set(ACME_RELEASE.marts), built_by
    assert {(by["run_id"], by["image"]) for by in built_by.values()} == {(again.run_id, next_image)}, built_by
    columns = query(
        warehouse,
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
        (GREEN, ACME_RELEASE.paused_model),
    )
    assert (NEW_COLUMN,) in columns, columns
