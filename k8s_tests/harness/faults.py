"""The faults the chaos scenarios and the benchmark inject, through the Kubernetes API (and crictl
on a kind node, for a kill that skips SIGTERM), and the waits that find their targets."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kubernetes import client

from k8s_tests.harness.cluster import tool, wait_until
from k8s_tests.harness.deployment import Deployment

RUN_POD_RUNNING_TIMEOUT_SECONDS = 120
# A Deployment's or StatefulSet's replacement pod: scheduling, the image already on the node, and
# its readiness probe (the code location loads the dbt manifest first).
REPLACEMENT_READY_TIMEOUT_SECONDS = 300
# The node lifecycle controller mirrors a cordon into the taint below, a moment after the patch.
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
CORDON_TAINT_TIMEOUT_SECONDS = 60
DRAIN_TIMEOUT_SECONDS = 300
# A frozen kind node is Ready again within a kubelet status update or two of being unfrozen.
NODE_BACK_TIMEOUT_SECONDS = 300
# Pods the chart's Deployments and StatefulSet run: what must be Ready again after a node fault.
CHART_COMPONENTS = ("postgresql", "code-location", "webserver", "daemon")


def running_run_pod(deployment: Deployment, run_id: str) -> client.V1Pod:
    def probe() -> tuple[bool, object]:
        pods = deployment.run_pods(run_id)
        running = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        return len(running) == 1, running[0] if running else [(p.metadata.name, p.status.phase) for p in pods]

    return wait_until(f"the run pod of {run_id} to be Running", probe, RUN_POD_RUNNING_TIMEOUT_SECONDS)


def evict(deployment: Deployment, pod: client.V1Pod) -> None:
    """policy/v1 Eviction: SIGTERM, then the pod's termination grace period."""
    deployment.core_v1.create_namespaced_pod_eviction(
        pod.metadata.name,
        pod.metadata.namespace,
        client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)),
    )


def kill_without_grace(deployment: Deployment, pod: client.V1Pod) -> None:
    """SIGKILL the pod's container on its node (`crictl stop --timeout 0` skips SIGTERM), then
    delete the pod with grace period 0. A delete with grace 0 alone still lets the kubelet send
    SIGTERM first, and a run worker then often reports its own termination: not the case under test."""
    (status,) = pod.status.container_statuses
    container_id = status.container_id.split("://", 1)[1]
    subprocess.run(
        ["docker", "exec", pod.spec.node_name, "crictl", "stop", "--timeout", "0", container_id],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    deployment.core_v1.delete_namespaced_pod(
        pod.metadata.name, pod.metadata.namespace, body=client.V1DeleteOptions(grace_period_seconds=0)
    )


@contextmanager
def partitioned(deployment: Deployment, pod: client.V1Pod, peer: client.V1Pod) -> Iterator[float]:
    """Drops every packet between two pods, both ways, without a reset (no RST, no ICMP): iptables
    DROP rules at the top of FORWARD on every node, where pod traffic is routed. Yields the time
    (time.monotonic) the cut took effect; the rules go when the block ends, however it ends."""
    nodes = [node.metadata.name for node in deployment.core_v1.list_node().items]
    source, destination = pod.status.pod_ip, peer.status.pod_ip
    rules = [["-s", source, "-d", destination, "-j", "DROP"], ["-s", destination, "-d", source, "-j", "DROP"]]

    def iptables(node: str, action: str, rule: list[str]) -> None:
        subprocess.run(
            ["docker", "exec", node, "iptables", action, "FORWARD", *rule],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )

    inserted = []
    try:
        for node in nodes:
            for rule in rules:
                iptables(node, "-I", rule)
                inserted.append((node, rule))
        yield time.monotonic()
    finally:
        for node, rule in inserted:
            iptables(node, "-D", rule)


def schedulable_nodes(core_v1: client.CoreV1Api) -> list[str]:
    """Nodes without a NoSchedule taint (kind taints the control plane of a multi-node cluster)."""
    return [
        node.metadata.name
        for node in core_v1.list_node().items
        if not any(taint.effect == "NoSchedule" for taint in node.spec.taints or []) and not node.spec.unschedulable
    ]


def set_unschedulable(core_v1: client.CoreV1Api, node: str, unschedulable: bool) -> None:
    """Cordon or uncordon, and wait for the node controller's taint to follow: until it does, an
    uncordoned node still refuses pods (and is not in schedulable_nodes())."""
    core_v1.patch_node(node, {"spec": {"unschedulable": unschedulable}})

    def probe() -> tuple[bool, list[str]]:
        taints = [t.key for t in core_v1.read_node(node).spec.taints or []]
        return (UNSCHEDULABLE_TAINT in taints) == unschedulable, taints

    state = "added to" if unschedulable else "removed from"
    wait_until(f"taint {UNSCHEDULABLE_TAINT} {state} node {node}", probe, CORDON_TAINT_TIMEOUT_SECONDS, interval=0.5)


def node_ready(core_v1: client.CoreV1Api, node: str) -> bool:
    conditions = core_v1.read_node(node).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


@contextmanager
def cordoned(core_v1: client.CoreV1Api, node: str) -> Iterator[None]:
    """The node takes no new pod inside the block."""
    set_unschedulable(core_v1, node, True)
    try:
        yield
    finally:
        set_unschedulable(core_v1, node, False)


def move_off(deployment: Deployment, node: str, components: tuple[str, ...]) -> None:
    """Moves the pods of chart components off a node: each deleted while the node is cordoned, and
    its replacement Ready elsewhere."""
    with cordoned(deployment.core_v1, node):
        for component in components:
            for pod in live_component_pods(deployment, component):
                if pod.spec.node_name == node:
                    deployment.core_v1.delete_namespaced_pod(pod.metadata.name, deployment.namespace)
                    wait_replacement_ready(deployment, component, pod)
    deployment.webserver.stop()  # its port-forward may have been to a pod just moved


def drain(deployment: Deployment, node: str) -> subprocess.CompletedProcess[str]:
    """`kubectl drain`: cordon, then evict every pod but DaemonSets' through the Eviction API."""
    return subprocess.run(
        [
            tool("kubectl"),
            "--kubeconfig",
            str(deployment.cluster.kubeconfig),
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            f"--timeout={DRAIN_TIMEOUT_SECONDS}s",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=DRAIN_TIMEOUT_SECONDS + 60,
    )


def freeze_node(node: str) -> None:
    """A node lost without a word: `docker pause` freezes every process of the kind node, the
    kubelet included, with no shutdown of any kind."""
    subprocess.run(["docker", "pause", node], check=True, capture_output=True, text=True, timeout=60)


def unfreeze_node(core_v1: client.CoreV1Api, node: str) -> None:
    """Unfreezes a frozen node (on one that is not, `docker unpause` fails and changes nothing)
    and waits for it to be Ready."""
    subprocess.run(["docker", "unpause", node], capture_output=True, text=True, timeout=60)
    wait_until(f"node {node} to be Ready", lambda: (node_ready(core_v1, node), node), NODE_BACK_TIMEOUT_SECONDS)


def wait_components_ready(deployment: Deployment) -> None:
    """Every live pod of every chart component Ready."""
    for component in CHART_COMPONENTS:

        def probe(component: str = component) -> tuple[bool, object]:
            pods = live_component_pods(deployment, component)
            ready = [
                p for p in pods if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            ]
            return bool(pods) and len(ready) == len(pods), [(p.metadata.name, p.status.phase) for p in pods]

        wait_until(f"every {component} pod Ready", probe, NODE_BACK_TIMEOUT_SECONDS)


def pod_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def live_component_pods(deployment: Deployment, component: str) -> list[client.V1Pod]:
    """The pods of a chart component (webserver, daemon, code-location, postgresql) not terminating."""
    return [p for p in deployment.component_pods(component) if not p.metadata.deletion_timestamp]


def only_component_pod(deployment: Deployment, component: str) -> client.V1Pod:
    """The one live pod of a single-replica component (webserver, daemon, postgresql)."""
    pods = live_component_pods(deployment, component)
    assert len(pods) == 1, f"{component}: expected one live pod, found {[p.metadata.name for p in pods]}"
    return pods[0]


def wait_replacements_ready(deployment: Deployment, component: str, replaced: list[client.V1Pod]) -> list[client.V1Pod]:
    """Waits for the controller's new pods of `component` (other uids than `replaced`, as many) to be Ready."""
    replaced_uids = {p.metadata.uid for p in replaced}

    def probe() -> tuple[bool, object]:
        pods = deployment.component_pods(component)
        ready = [
            p
            for p in pods
            if p.metadata.uid not in replaced_uids and not p.metadata.deletion_timestamp and pod_ready(p)
        ]
        done = len(ready) >= len(replaced)
        return done, ready if done else [(p.metadata.name, p.status.phase) for p in pods]

    return wait_until(f"{len(replaced)} new Ready {component} pod(s)", probe, REPLACEMENT_READY_TIMEOUT_SECONDS)


def wait_replacement_ready(deployment: Deployment, component: str, replaced: client.V1Pod) -> client.V1Pod:
    """Waits for the controller's new pod of `component` (another uid than `replaced`) to be Ready."""
    return wait_replacements_ready(deployment, component, [replaced])[0]
