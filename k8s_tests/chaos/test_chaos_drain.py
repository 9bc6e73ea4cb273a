"""Chaos scenario 9 on a multi-node kind cluster (issue 5): `kubectl drain` of the worker node that
hosts a release's run pod. The drain evicts the run pod (and whatever else of the release runs
there) through the Eviction API; the release must recover as in scenario 1.

PostgreSQL keeps its data on a local-path volume bound to one node, so the run pod is first kept
off PostgreSQL's node (cordoned while the run starts): draining that node would leave PostgreSQL
Pending until the node comes back, which is a different scenario.

The chart spreads the code servers over the nodes, so the drained node hosts one of them too. That
is the case that once lost the retry: the daemon found the only code server gone when it came to
create the retry, and Dagster marked the parent will_retry=false for good. The disruption budget
keeps the other replica serving.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from k8s_tests.chaos.release_checks import (
    PARENT_FAILS_TIMEOUT_SECONDS,
    Reference,
    assert_group_exactly_once,
    assert_reader_saw_one_release_at_a_time,
    launch_and_reach_slow_model,
    wait_one_retry_finished,
)
from k8s_tests.harness.deployment import Deployment
from k8s_tests.harness.faults import (
    cordoned,
    drain,
    only_component_pod,
    running_run_pod,
    schedulable_nodes,
    set_unschedulable,
)
from k8s_tests.harness.release import GreenReader, wait_run_finished


@pytest.fixture
def worker_nodes(chaos_deployment: Deployment) -> Iterator[list[str]]:
    """The schedulable workers; every one is schedulable again after the test."""
    nodes = schedulable_nodes(chaos_deployment.core_v1)
    if len(nodes) < 2:
        pytest.skip(
            f"scenario 9 drains a worker and needs two schedulable nodes, this cluster has {nodes}: "
            "run on a multi-node cluster (--cluster-layout multi, or `make cluster LAYOUT=multi` and --kind-cluster)"
        )
    yield nodes
    for node in nodes:
        set_unschedulable(chaos_deployment.core_v1, node, False)


def test_drain_of_the_run_pods_node(
    chaos_deployment: Deployment, reference: Reference, green_reader: GreenReader, worker_nodes: list[str]
) -> None:
    core_v1 = chaos_deployment.core_v1
    postgresql_node = only_component_pod(chaos_deployment, "postgresql").spec.node_name
    with cordoned(core_v1, postgresql_node):
        parent_id = launch_and_reach_slow_model(chaos_deployment)
        pod = running_run_pod(chaos_deployment, parent_id)
    node = pod.spec.node_name
    assert node != postgresql_node
    moved = [
        p.metadata.name
        for p in core_v1.list_namespaced_pod(chaos_deployment.namespace).items
        if p.spec.node_name == node and p.status.phase == "Running"
    ]
    code_servers_on_node = [
        p.metadata.name for p in chaos_deployment.component_pods("code-location") if p.spec.node_name == node
    ]
    assert code_servers_on_node, (
        f"the chart should have spread the code servers so that one runs on {node}; pods there: {moved}"
    )
    fault_at = time.time()
    drained = drain(chaos_deployment, node)
    drain_seconds = time.time() - fault_at

    api = chaos_deployment.api
    parent = wait_run_finished(api, parent_id, PARENT_FAILS_TIMEOUT_SECONDS, "the parent run on the drained node")
    assert parent.status == "FAILURE"
    assert parent.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION", parent.tags
    group = wait_one_retry_finished(api, parent_id)
    green_reader.stop()
    retry = group[-1]
    retry_nodes = {p.spec.node_name for p in chaos_deployment.run_pods(retry.run_id)}
    print(
        f"\n[drain of {node}, pods on it: {moved}] drain took {drain_seconds:.1f}s; "
        f"drain -> retry created {retry.creation_time - fault_at:.1f}s, "
        f"-> retry started {retry.start_time - fault_at:.1f}s, -> group SUCCESS {retry.end_time - fault_at:.1f}s; "
        f"retry ran on {retry_nodes}"
    )
    assert node not in retry_nodes, drained.stdout
    assert_group_exactly_once(chaos_deployment, reference, group)
    assert_reader_saw_one_release_at_a_time(green_reader, parent_id)
