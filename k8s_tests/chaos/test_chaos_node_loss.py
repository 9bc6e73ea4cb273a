"""Chaos scenario of a lost node (issue 12, part 1): the kind node that hosts a release's run pod
stops, all at once, mid-build (`docker pause`: every process of the node frozen, the kubelet
included, with no shutdown of any kind: to the cluster it is a node whose power went). Nothing
tells Kubernetes the pod ended: the node turns unreachable after the node monitor's grace period,
the pod is deleted once it no longer tolerates that (the chart's nodeLoss.tolerationSeconds), and
the deletion never completes. The run launcher force-deletes the pod once its deletion is overdue
(dagster_code/run_launcher.py), run monitoring fails the run, and the retry runs on the other
node, exactly once. The node is unfrozen at the end (its kubelet then kills the deleted pod's
worker), so the suite goes on with two workers.

PostgreSQL, and the webserver and the daemon the test talks to, are kept off the lost node: losing
the node of the embedded PostgreSQL and its local volume is another case (see the README).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from k8s_tests.chaos.release_checks import (
    Reference,
    assert_group_exactly_once,
    assert_reader_saw_one_release_at_a_time,
    launch_and_reach_slow_model,
    wait_one_retry_finished,
)
from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.deployment import Deployment
from k8s_tests.harness.faults import (
    cordoned,
    freeze_node,
    move_off,
    node_ready,
    only_component_pod,
    running_run_pod,
    schedulable_nodes,
    unfreeze_node,
    wait_components_ready,
)
from k8s_tests.harness.release import GreenReader, failure_messages, wait_run_finished

# Node monitor grace period (50 s in Kubernetes 1.34), the chart's toleration (30 s), the pod's
# grace period (30 s) and the launcher's margin (15 s), then a run-monitoring poll: about 2.5 min.
PARENT_FAILS_TIMEOUT_SECONDS = 360
# Components the test itself talks to or that the lost node must not take along.
KEPT_OFF_THE_LOST_NODE = ("webserver", "daemon")


@pytest.fixture
def lost_node(chaos_deployment: Deployment) -> Iterator[str]:
    """The worker that is not PostgreSQL's, with the webserver and the daemon moved off it; after
    the test it is unfrozen, Ready, schedulable, and every pod of the release Ready."""
    workers = schedulable_nodes(chaos_deployment.core_v1)
    postgresql_node = only_component_pod(chaos_deployment, "postgresql").spec.node_name
    others = [node for node in workers if node != postgresql_node]
    if not others:
        pytest.skip(f"needs a schedulable worker besides PostgreSQL's node; this cluster has {workers}")
    node = others[0]
    move_off(chaos_deployment, node, KEPT_OFF_THE_LOST_NODE)
    try:
        yield node
    finally:
        unfreeze_node(chaos_deployment.core_v1, node)
        wait_components_ready(chaos_deployment)


def test_lost_node_of_the_run_pod_retried_on_another_node(
    chaos_deployment: Deployment, reference: Reference, green_reader: GreenReader, lost_node: str
) -> None:
    core_v1 = chaos_deployment.core_v1
    api = chaos_deployment.api
    # The run pod goes to the node that will be lost: PostgreSQL's is cordoned while it starts (a
    # node selector in the run's tags would follow it into the retry, onto the lost node).
    with cordoned(core_v1, only_component_pod(chaos_deployment, "postgresql").spec.node_name):
        parent_id = launch_and_reach_slow_model(chaos_deployment)
        pod = running_run_pod(chaos_deployment, parent_id)
    assert pod.spec.node_name == lost_node

    lost_at = time.time()
    freeze_node(lost_node)
    wait_until(
        f"node {lost_node} to turn not Ready",
        lambda: (not node_ready(core_v1, lost_node), lost_node),
        PARENT_FAILS_TIMEOUT_SECONDS,
    )
    not_ready_after = time.time() - lost_at
    parent = wait_run_finished(api, parent_id, PARENT_FAILS_TIMEOUT_SECONDS, "the parent run on the lost node")
    assert parent.status == "FAILURE"
    messages = failure_messages(api, parent_id)
    assert f"node {lost_node} stopped answering" in messages, messages

    # The retry must run while the node is still lost: on the other one.
    group = wait_one_retry_finished(api, parent_id)
    green_reader.stop()
    retry = group[-1]
    retry_nodes = {p.spec.node_name for p in chaos_deployment.run_pods(retry.run_id)}
    print(
        f"\n[node {lost_node} lost] -> NotReady {not_ready_after:.0f}s; -> parent FAILURE "
        f"{parent.end_time - lost_at:.0f}s; -> retry started {retry.start_time - lost_at:.0f}s; "
        f"-> group SUCCESS {retry.end_time - lost_at:.0f}s; retry ran on {retry_nodes}"
    )
    assert lost_node not in retry_nodes
    assert_group_exactly_once(chaos_deployment, reference, group)
    assert_reader_saw_one_release_at_a_time(green_reader, parent_id)
