"""The chart's isolation on kind: its NetworkPolicies, enforced by the cluster's own enforcer
(k8s_tests/cluster/images/network-policy, installed by k8s_tests/cluster/up.sh), and its
per-component ServiceAccounts, as the API server's authorizer sees them.

On the chaos suite's release (`chaos_deployment`: installed by hack/up.sh, policies on by default,
and its raw_data_job run already succeeded through them): a pod of another namespace cannot open a
TCP connection to the webserver, PostgreSQL or a code server's gRPC port, by Service or by any
pod's address (every node's enforcer is asked); once networkPolicy.webserver.ingressFrom names its
namespace it reaches the webserver, so what fails is the policy, not the network; from inside the
release (the daemon) PostgreSQL and the code server connect. A pod with the run pods' labels
reaches PostgreSQL and the code server but not a listener of another namespace (egress).
`kubectl auth can-i` as each component's ServiceAccount allows exactly its Role's verbs, and the
webserver's Role is enough for what it is for: terminating a started run deletes its Job.
A policy created, changed and deleted in a namespace of the test's own takes effect within
POLICY_APPLIED_SECONDS; the time it took is printed.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from k8s_tests.harness.cluster import KindCluster, tool, wait_until
from k8s_tests.harness.deployment import (
    CHART_DIR,
    FULLNAME,
    KIND_VALUES,
    POSTGRESQL_SERVICE,
    RELEASE_NAME,
    WEBSERVER_SERVICE,
    Deployment,
)
from k8s_tests.harness.example import RELEASE_JOB, SLOW_MODEL_TAG

ENFORCER_NAMESPACE = "kube-system"
ENFORCER_DAEMONSET = "network-policy"
# A refused connection here is a dropped SYN: connect() gives up after this long.
CONNECT_TIMEOUT_SECONDS = 3
POD_READY_SECONDS = 180
# From a NetworkPolicy change in the API to the nodes' rules (the enforcer debounces 250 ms).
POLICY_APPLIED_SECONDS = 15
LISTENER_PORT = 8080
COMPONENT = "app.kubernetes.io/component"
# The components the chart's NetworkPolicies select, one each (the default-deny selects them all).
POLICY_COMPONENTS = ["code-location", "daemon", "migrate", "pools", "postgresql", "run-worker", "test", "webserver"]
# Run in a pod: connects to each "host:port" of argv[1] (JSON) and prints {target: outcome}.
CONNECT_SCRIPT = """
import json, socket, sys
outcomes = {}
for target in json.loads(sys.argv[1]):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=float(sys.argv[2])).close()
        outcomes[target] = "connected"
    except OSError as error:
        outcomes[target] = f"{type(error).__name__}: {error}"
print(json.dumps(outcomes))
"""
# Run in a pod: prints "ready" once connecting to argv[1] gives the outcome argv[2] is not
# ("connected" or "refused"), then the time.time() at which it first gives argv[2]; gives up after
# argv[3] seconds. The kind nodes share the host's clock, so the test subtracts its own time.
WATCH_SCRIPT = """
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
want, deadline = sys.argv[2], time.monotonic() + float(sys.argv[3])
def outcome():
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
        return "connected"
    except OSError:
        return "refused"
while outcome() == want:
    if time.monotonic() > deadline:
        sys.exit(f"{sys.argv[1]}: never saw the state before {want}")
    time.sleep(0.2)
print("ready", flush=True)
while outcome() != want:
    if time.monotonic() > deadline:
        sys.exit(f"{sys.argv[1]}: not {want} within {sys.argv[3]}s")
    time.sleep(0.1)
print(time.time(), flush=True)
"""


def kubectl(cluster: KindCluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def connect_from(cluster: KindCluster, namespace: str, pod: str, targets: list[str]) -> dict[str, str]:
    """{target: "connected" or the error} of a TCP connect from inside `pod` to each target."""
    result = kubectl(
        cluster,
        "-n",
        namespace,
        "exec",
        pod,
        "--",
        "python",
        "-c",
        CONNECT_SCRIPT,
        json.dumps(targets),
        str(CONNECT_TIMEOUT_SECONDS),
        timeout=60 + CONNECT_TIMEOUT_SECONDS * len(targets),
    )
    assert result.returncode == 0, f"kubectl exec {namespace}/{pod} failed: {result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def python_pod(name: str, image: str, labels: dict[str, str], command: list[str]) -> dict[str, Any]:
    """A pod of the project image (it has Python; loaded with kind load, never pulled), restricted."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                }
            ],
        },
    }


def start_pod(core_v1: client.CoreV1Api, namespace: str, manifest: dict[str, Any]) -> client.V1Pod:
    name = manifest["metadata"]["name"]
    core_v1.create_namespaced_pod(namespace, manifest)

    def running() -> tuple[bool, Any]:
        pod = core_v1.read_namespaced_pod(name, namespace)
        ready = pod.status.phase == "Running" and pod.status.pod_ip
        return bool(ready), (pod if ready else f"phase {pod.status.phase}, ip {pod.status.pod_ip}")

    return wait_until(f"pod {namespace}/{name} to run", running, POD_READY_SECONDS)


def start_listener(core_v1: client.CoreV1Api, namespace: str, name: str, image: str) -> client.V1Pod:
    """A running pod (label role=name) that accepts TCP connections on LISTENER_PORT."""
    command = ["python", "-m", "http.server", str(LISTENER_PORT), "--directory", "/tmp"]
    return start_pod(core_v1, namespace, python_pod(name, image, {"role": name}, command))


@pytest.fixture(scope="module")
def enforcer(kind_cluster: KindCluster, k8s_client: client.ApiClient, core_v1: client.CoreV1Api) -> None:
    """The enforcer runs on every node; fails, naming the fix, on a cluster made without it."""
    apps = client.AppsV1Api(k8s_client)
    try:
        daemonset = apps.read_namespaced_daemon_set(ENFORCER_DAEMONSET, ENFORCER_NAMESPACE)
    except client.ApiException as error:
        if error.status != 404:
            raise
        pytest.fail(
            f"no DaemonSet {ENFORCER_NAMESPACE}/{ENFORCER_DAEMONSET} in cluster {kind_cluster.name}: "
            "it was made before the NetworkPolicy enforcer; run k8s_tests/cluster/up.sh again (it installs it)"
        )
    nodes = len(core_v1.list_node().items)
    ready = daemonset.status.number_ready or 0
    assert ready == nodes, f"the NetworkPolicy enforcer is ready on {ready} of {nodes} nodes"


@pytest.fixture(scope="module")
def outsider(enforcer: None, core_v1: client.CoreV1Api, namespace: str, project_image: str) -> Iterator[str]:
    """A pod in a namespace of its own (not the release's), idle; its name."""
    name = "outsider"
    start_pod(core_v1, namespace, python_pod(name, project_image, {"role": "client"}, ["sleep", "3600"]))
    yield name


def release_targets(deployment: Deployment) -> dict[str, list[str]]:
    """host:port targets of the release, by what they are: each Service's address and each of its
    pods' (a pod's own port, from its spec)."""
    core = deployment.core_v1
    ns = deployment.namespace

    def service_target(service: client.V1Service) -> str:
        return f"{service.spec.cluster_ip}:{service.spec.ports[0].port}"

    def pod_targets(component: str, port_name: str) -> list[str]:
        found = []
        for pod in deployment.component_pods(component):
            if pod.status.phase != "Running" or not pod.status.pod_ip:
                continue
            ports = [p.container_port for c in pod.spec.containers for p in c.ports or [] if p.name == port_name]
            found += [f"{pod.status.pod_ip}:{port}" for port in ports]
        assert found, f"no running pod of component {component} with a port named {port_name}"
        return found

    code_services = core.list_namespaced_service(
        ns, label_selector="app.kubernetes.io/component=code-location,app.kubernetes.io/instance=dagster"
    ).items
    assert code_services, f"no code-location Service in {ns}"
    return {
        "postgresql": [
            service_target(core.read_namespaced_service(POSTGRESQL_SERVICE, ns)),
            *pod_targets("postgresql", "postgresql"),
        ],
        "code server": [*map(service_target, code_services), *pod_targets("code-location", "grpc")],
        "webserver": [
            service_target(core.read_namespaced_service(WEBSERVER_SERVICE, ns)),
            *pod_targets("webserver", "http"),
        ],
    }


def test_the_chart_installed_its_policies(chaos_deployment: Deployment, k8s_client: client.ApiClient):
    policies = client.NetworkingV1Api(k8s_client).list_namespaced_network_policy(chaos_deployment.namespace).items
    protected = sorted(p.spec.pod_selector.match_labels.get(COMPONENT, "(every pod)") for p in policies)
    assert protected == sorted(["(every pod)", *POLICY_COMPONENTS]), protected
    (deny,) = [p for p in policies if COMPONENT not in p.spec.pod_selector.match_labels]
    assert deny.spec.policy_types == ["Ingress", "Egress"]


def test_another_namespace_reaches_nothing_of_the_release(
    chaos_deployment: Deployment, kind_cluster: KindCluster, namespace: str, outsider: str
):
    targets = release_targets(chaos_deployment)
    outcomes = connect_from(kind_cluster, namespace, outsider, [t for group in targets.values() for t in group])
    print(f"from {namespace}/{outsider}: {outcomes}")
    for protected in ("webserver", "postgresql", "code server"):
        for target in targets[protected]:
            assert outcomes[target] != "connected", f"{protected} at {target} accepted a pod of namespace {namespace}"
            assert "timed out" in outcomes[target], f"{target}: dropped packets time out; got {outcomes[target]}"


def webserver_policy(namespace: str, ingress_from: list[dict[str, Any]]) -> str:
    """The chart's webserver NetworkPolicy as hack/up.sh installs it (its values), with
    networkPolicy.webserver.ingressFrom set."""
    result = subprocess.run(
        [
            tool("helm"),
            "template",
            RELEASE_NAME,
            str(CHART_DIR),
            "--namespace",
            namespace,
            "--values",
            str(KIND_VALUES),
            "--set-json",
            f"networkPolicy.webserver.ingressFrom={json.dumps(ingress_from)}",
            "--show-only",
            "templates/webserver-networkpolicy.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_webserver_admits_what_ingress_from_names(
    chaos_deployment: Deployment,
    kind_cluster: KindCluster,
    k8s_client: client.ApiClient,
    namespace: str,
    outsider: str,
):
    """The webserver's policy rendered with ingressFrom naming the outsider's namespace and applied
    over the release's (cheaper than a helm upgrade, which runs both hooks); the release's own put
    back after."""
    targets = release_targets(chaos_deployment)["webserver"]
    ns = chaos_deployment.namespace
    networking = client.NetworkingV1Api(k8s_client)
    policy_name = f"{FULLNAME}-webserver"
    original = networking.read_namespaced_network_policy(policy_name, ns)
    allow = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}]

    def apply(manifest: str) -> None:
        result = subprocess.run(
            [tool("kubectl"), "--kubeconfig", str(kind_cluster.kubeconfig), "-n", ns, "apply", "-f", "-"],
            input=manifest,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    apply(webserver_policy(ns, allow))
    try:

        def reached() -> tuple[bool, dict[str, str]]:
            found = connect_from(kind_cluster, namespace, outsider, targets)
            return all(outcome == "connected" for outcome in found.values()), found

        outcomes = wait_until(
            f"{namespace}/{outsider} to reach the webserver at {targets} once ingressFrom names {namespace}",
            reached,
            POLICY_APPLIED_SECONDS + 30,
        )
        print(f"with ingressFrom naming {namespace}: {outcomes}")
    finally:
        current = networking.read_namespaced_network_policy(policy_name, ns)
        original.metadata.resource_version = current.metadata.resource_version
        original.metadata.managed_fields = None
        networking.replace_namespaced_network_policy(policy_name, ns, original)


def test_a_run_pod_reaches_only_its_allowed_egress(
    chaos_deployment: Deployment,
    kind_cluster: KindCluster,
    core_v1: client.CoreV1Api,
    namespace: str,
    project_image: str,
):
    """A pod with the run pods' labels in the release's namespace: PostgreSQL and the code server
    connect, a listener in another namespace (no policy of its own) does not; the same listener
    accepts a pod of the release's namespace without those labels (the control)."""
    ns = chaos_deployment.namespace
    listener = start_listener(core_v1, namespace, "egress-target", project_image)
    outside = f"{listener.status.pod_ip}:{LISTENER_PORT}"
    run_labels = {
        "app.kubernetes.io/name": "dagster-dbt-k8s",
        "app.kubernetes.io/instance": RELEASE_NAME,
        COMPONENT: "run-worker",
    }
    for name, labels in (("fake-run-pod", run_labels), ("unlabelled-pod", {"role": "control"})):
        start_pod(core_v1, ns, python_pod(name, project_image, labels, ["sleep", "3600"]))
    try:
        targets = release_targets(chaos_deployment)
        inside = [*targets["postgresql"], *targets["code server"]]
        control = connect_from(kind_cluster, ns, "unlabelled-pod", [outside])
        assert control[outside] == "connected", f"the control pod does not reach {outside}: {control}"
        outcomes = connect_from(kind_cluster, ns, "fake-run-pod", [*inside, outside])
        print(f"from a run pod: {outcomes}")
        assert all(outcomes[t] == "connected" for t in inside), outcomes
        assert "timed out" in outcomes[outside], f"a run pod reached {outside} outside its egress: {outcomes}"
    finally:
        for name in ("fake-run-pod", "unlabelled-pod"):
            core_v1.delete_namespaced_pod(name, ns, grace_period_seconds=0)


TERMINATE_RUN = """
mutation TerminateRun($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunFailure { message }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""
RUN_STARTED_SECONDS = 300
RUN_CANCELED_SECONDS = 120
# Long enough that the release is still running when it is terminated.
SLOW_MODEL_SECONDS = 300


def test_the_webserver_terminates_a_started_run(chaos_deployment: Deployment, batch_v1: client.BatchV1Api):
    """Terminate (the UI's button) is the webserver's own call of the run launcher: with only its
    Role (delete Jobs, list and delete Pods) the run ends CANCELED and its Job is gone."""
    api = chaos_deployment.api
    run_id = api.launch_run(RELEASE_JOB, {SLOW_MODEL_TAG: str(SLOW_MODEL_SECONDS)})
    chaos_deployment.runs_to_save.append(run_id)

    def status_is(want: str):
        return lambda: ((run := api.run(run_id)).status == want, run.status)

    wait_until(f"run {run_id} to start", status_is("STARTED"), RUN_STARTED_SECONDS)
    started = time.monotonic()
    result = api.query(TERMINATE_RUN, resend=False, runId=run_id)["terminateRun"]
    assert result["__typename"] == "TerminateRunSuccess", result
    wait_until(f"run {run_id} to be CANCELED", status_is("CANCELED"), RUN_CANCELED_SECONDS)

    def job_gone() -> tuple[bool, list[str]]:
        jobs = batch_v1.list_namespaced_job(chaos_deployment.namespace).items
        left = [job.metadata.name for job in jobs if run_id in job.metadata.name]
        return not left, left

    wait_until(f"the Job of run {run_id} to be deleted", job_gone, RUN_CANCELED_SECONDS)
    print(f"run {run_id} terminated through the webserver: CANCELED in {time.monotonic() - started:.1f}s")


# What each component's ServiceAccount may do in the release namespace (kubectl auth can-i), of
# the checks in CAN_I_CHECKS; everything else is refused.
CAN_I_CHECKS = [
    ("create", "jobs.batch"),
    ("get", "jobs.batch"),
    ("list", "jobs.batch"),
    ("delete", "jobs.batch"),
    ("get", "pods"),
    ("list", "pods"),
    ("delete", "pods"),
    ("create", "pods"),
    ("get", "pods/log"),
    ("list", "events"),
    ("get", "secrets"),
    ("list", "configmaps"),
    ("create", "deployments.apps"),
]
ALLOWED = {
    "webserver": {("delete", "jobs.batch"), ("list", "pods"), ("delete", "pods")},
    "daemon": {
        ("create", "jobs.batch"),
        ("get", "jobs.batch"),
        ("list", "jobs.batch"),
        ("delete", "jobs.batch"),
        ("get", "pods"),
        ("list", "pods"),
        ("delete", "pods"),
        ("get", "pods/log"),
        ("list", "events"),
    },
    "code-location": set(),
    "run-worker": set(),
    "postgresql": set(),
    "hooks": set(),
}


def test_each_service_account_may_do_only_its_components_calls(chaos_deployment: Deployment):
    ns = chaos_deployment.namespace
    cluster = chaos_deployment.cluster
    started = time.monotonic()
    for account, allowed in ALLOWED.items():
        user = f"system:serviceaccount:{ns}:{FULLNAME}-{account}"
        listing = kubectl(cluster, "-n", ns, "auth", "can-i", "--list", "--as", user)
        assert listing.returncode == 0, listing.stderr
        print(f"{user}:\n{listing.stdout}")
        granted = set()
        for verb, resource in CAN_I_CHECKS:
            answer = kubectl(cluster, "-n", ns, "auth", "can-i", verb, resource, "--as", user)
            assert answer.stdout.strip() in ("yes", "no"), f"can-i {verb} {resource} as {user}: {answer.stderr}"
            if answer.stdout.strip() == "yes":
                granted.add((verb, resource))
        assert granted == allowed, f"{user}: may {sorted(granted)}, should {sorted(allowed)}"
    # The run pods: the launcher names their account and mounts no token (nothing reads it).
    pods = {(p.metadata.labels or {}).get(COMPONENT): p for p in chaos_deployment.core_v1.list_namespaced_pod(ns).items}
    assert pods["daemon"].spec.service_account_name == f"{FULLNAME}-daemon"
    assert pods["code-location"].spec.automount_service_account_token is False
    print(f"can-i for {len(ALLOWED)} accounts in {time.monotonic() - started:.1f}s")


def test_the_release_reaches_postgresql_and_the_code_server(chaos_deployment: Deployment, enforcer: None):
    targets = release_targets(chaos_deployment)
    (daemon, *_) = [pod for pod in chaos_deployment.component_pods("daemon") if pod.status.phase == "Running"]
    outcomes = connect_from(
        chaos_deployment.cluster,
        chaos_deployment.namespace,
        daemon.metadata.name,
        [*targets["postgresql"], *targets["code server"]],
    )
    assert set(outcomes.values()) == {"connected"}, outcomes


def watch_until(cluster: KindCluster, namespace: str, pod: str, target: str, want: str, change) -> float:
    """Seconds from `change()` (an API call) until `pod` sees connecting to `target` give `want`."""
    watcher = subprocess.Popen(
        [
            tool("kubectl"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            namespace,
            "exec",
            pod,
            "--",
            "python",
            "-c",
            WATCH_SCRIPT,
            target,
            want,
            str(POLICY_APPLIED_SECONDS + 30),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = watcher.stdout.readline().strip()
        assert first == "ready", (
            f"watcher of {target}: {first} {watcher.stderr.read() if watcher.poll() is not None else ''}"
        )
        changed_at = time.time()
        change()
        output, errors = watcher.communicate(timeout=POLICY_APPLIED_SECONDS + 60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, f"watcher of {target}: {errors}"
    return float(output.strip().splitlines()[-1]) - changed_at


def test_a_policy_change_takes_effect_within_seconds(
    kind_cluster: KindCluster,
    k8s_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    namespace: str,
    outsider: str,
    project_image: str,
):
    """Deny-all on a listener, then an allow from the outsider by podSelector and port, then the
    policy deleted: each change reaches the listener's node within POLICY_APPLIED_SECONDS."""
    networking = client.NetworkingV1Api(k8s_client)
    listener = start_listener(core_v1, namespace, "listener", project_image)
    target = f"{listener.status.pod_ip}:{LISTENER_PORT}"
    wait_until(
        f"{target} to accept connections",
        lambda: (
            (outcome := connect_from(kind_cluster, namespace, outsider, [target])[target]) == "connected",
            outcome,
        ),
        60,
    )
    name = "listener-ingress"
    deny_all = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {"podSelector": {"matchLabels": {"role": "listener"}}, "policyTypes": ["Ingress"]},
    }
    allow_client = {
        "spec": {
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["client"]}]}}
                    ],
                    "ports": [{"protocol": "TCP", "port": LISTENER_PORT}],
                }
            ]
        }
    }
    timings = {
        "deny-all created": watch_until(
            kind_cluster,
            namespace,
            outsider,
            target,
            "refused",
            lambda: networking.create_namespaced_network_policy(namespace, deny_all),
        ),
        "allow added": watch_until(
            kind_cluster,
            namespace,
            outsider,
            target,
            "connected",
            lambda: networking.patch_namespaced_network_policy(name, namespace, allow_client),
        ),
    }
    networking.patch_namespaced_network_policy(
        name, namespace, {"spec": {"ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "nobody"}}}]}]}}
    )
    timings["policy deleted"] = watch_until(
        kind_cluster,
        namespace,
        outsider,
        target,
        "connected",
        lambda: networking.delete_namespaced_network_policy(name, namespace),
    )
    print("policy change -> enforced on the node: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    slow = {change: seconds for change, seconds in timings.items() if seconds > POLICY_APPLIED_SECONDS}
    assert not slow, f"changes enforced after more than {POLICY_APPLIED_SECONDS}s: {slow}"
