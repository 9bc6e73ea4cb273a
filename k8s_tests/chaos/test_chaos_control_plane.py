"""Chaos scenarios of the pods around a release on kind (issue 5): the daemon (6), the code
location (7) and PostgreSQL (8) deleted while a release is launched or running. Each release group
must end SUCCESS with the exactly-once assertions of scenario 1, and no run may stay STARTED.
"""

from __future__ import annotations

import time

from kubernetes import client

from k8s_tests.chaos.release_checks import (
    CHAOS_SLOW_MODEL_SECONDS,
    Reference,
    assert_group_exactly_once,
    assert_reader_saw_one_release_at_a_time,
    launch_and_reach_slow_model,
)
from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.deployment import Deployment, wait_location_loaded
from k8s_tests.harness.example import RELEASE_JOB, SLOW_MODEL_TAG
from k8s_tests.harness.faults import (
    live_component_pods,
    only_component_pod,
    wait_replacement_ready,
    wait_replacements_ready,
)
from k8s_tests.harness.release import GreenReader, failure_messages, wait_group_finished

LOCATION_RELOADED_TIMEOUT_SECONDS = 300


def delete_pods(deployment: Deployment, pods: list[client.V1Pod]) -> None:
    """An ordinary delete (the pods' grace period): what a rollout, `kubectl delete pod` or a node
    drain does to a Deployment's or StatefulSet's pods. Unlike an eviction, no disruption budget
    holds it back."""
    for pod in pods:
        deployment.core_v1.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace)


def report(label: str, group: list, fault_at: float) -> None:
    last = group[-1]
    reasons = [run.tags.get("dagster/failure_reason") for run in group[:-1]]
    print(
        f"\n[{label}] runs in group: {len(group)} (failure reasons {reasons}); "
        f"fault -> group {last.status}: {last.end_time - fault_at:.1f}s"
    )


def test_daemon_pod_deleted_mid_run(
    chaos_deployment: Deployment, reference: Reference, green_reader: GreenReader
) -> None:
    """Scenario 6. The run worker does not need the daemon: the run goes on while the Deployment
    replaces the daemon, and run monitoring resumes with the new one."""
    parent_id = launch_and_reach_slow_model(chaos_deployment)
    daemon = only_component_pod(chaos_deployment, "daemon")
    fault_at = time.time()
    delete_pods(chaos_deployment, [daemon])
    wait_replacement_ready(chaos_deployment, "daemon", daemon)
    group = wait_group_finished(chaos_deployment.api, parent_id)
    green_reader.stop()
    report("daemon pod deleted", group, fault_at)
    assert_group_exactly_once(chaos_deployment, reference, group)
    assert_reader_saw_one_release_at_a_time(green_reader, parent_id)


def test_code_location_pod_deleted_at_launch_and_mid_run(
    chaos_deployment: Deployment, reference: Reference, green_reader: GreenReader
) -> None:
    """Scenario 7. Every code server deleted right after the release is submitted (while the
    daemon dequeues and launches it), and again while the run builds: the run pod carries the code
    in its image, so the release completes; the webserver reloads the location from the new pods."""
    api = chaos_deployment.api
    first = live_component_pods(chaos_deployment, "code-location")
    root_id = api.launch_run(RELEASE_JOB, {SLOW_MODEL_TAG: str(CHAOS_SLOW_MODEL_SECONDS)})
    chaos_deployment.runs_to_save.append(root_id)
    fault_at = time.time()
    delete_pods(chaos_deployment, first)
    second = wait_replacements_ready(chaos_deployment, "code-location", first)

    def building() -> tuple[bool, object]:
        run = api.run(root_id)
        return run.status in {"STARTED", "SUCCESS", "FAILURE"}, run.status

    wait_until(f"the release {root_id} to start", building, LOCATION_RELOADED_TIMEOUT_SECONDS)
    delete_pods(chaos_deployment, second)
    wait_replacements_ready(chaos_deployment, "code-location", second)

    wait_location_loaded(chaos_deployment, LOCATION_RELOADED_TIMEOUT_SECONDS)
    group = wait_group_finished(api, root_id)
    green_reader.stop()
    report("every code-location pod deleted at launch and mid-run", group, fault_at)
    assert group[-1].status == "SUCCESS", failure_messages(api, group[-1].run_id)
    assert_group_exactly_once(chaos_deployment, reference, group)
    assert_reader_saw_one_release_at_a_time(green_reader, root_id)


def test_postgresql_pod_restarted_mid_run(
    chaos_deployment: Deployment, reference: Reference, green_reader: GreenReader
) -> None:
    """Scenario 8. PostgreSQL holds Dagster's storage and the warehouse: the run worker loses both
    mid-build. The run must not stay STARTED: it fails with a reason and is retried to SUCCESS (or
    rides the restart out), with every asset built exactly once."""
    api = chaos_deployment.api
    parent_id = launch_and_reach_slow_model(chaos_deployment)
    postgresql = only_component_pod(chaos_deployment, "postgresql")
    fault_at = time.time()
    delete_pods(chaos_deployment, [postgresql])
    wait_replacement_ready(chaos_deployment, "postgresql", postgresql)
    # kubectl port-forward can outlive the pod it forwarded to, refusing every connection: the
    # test's own queries go through a new one, to the replacement.
    chaos_deployment.postgresql.stop()
    group = wait_group_finished(api, parent_id)
    green_reader.stop()
    report("postgresql pod restarted", group, fault_at)
    for run in group[:-1]:
        assert failure_messages(api, run.run_id), f"run {run.run_id} failed with no error message"
    assert group[-1].status == "SUCCESS", failure_messages(api, group[-1].run_id)
    assert_group_exactly_once(chaos_deployment, reference, group)
    # The reader's connection went down with PostgreSQL: errors are expected, mixes are not.
    green_reader.errors.clear()
    assert_reader_saw_one_release_at_a_time(green_reader, parent_id)
