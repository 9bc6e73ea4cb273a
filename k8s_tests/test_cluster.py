"""Acceptance of the kind cluster `make cluster` builds (issue 3): it is healthy, runs the project's
image, resolves Services by name, provisions storage that outlives a pod, evicts gracefully, and
never pulls an image.

    uv run pytest k8s_tests/test_cluster.py [--kind-cluster NAME] [--keep-cluster]
"""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client, watch

from k8s_tests.harness.cluster import wait_until

POD_TIMEOUT_SECONDS = 180
READY_TIMEOUT_SECONDS = 300
EVICTION_GRACE_SECONDS = 30
# How long a client may find a Service with a ready endpoint still refusing connections, while
# kube-proxy on its node has not yet written the rules.
KUBE_PROXY_SYNC_SECONDS = 30
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


# --- Helpers -----------------------------------------------------------------------------------


def pod_manifest(name: str, image: str, script: str, **spec: Any) -> dict[str, Any]:
    """A pod running `script` with sh; images are preloaded, so IfNotPresent never pulls."""
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": spec.pop("labels", {"test": name})},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def pod_log(core_v1: client.CoreV1Api, namespace: str, name: str) -> str:
    """The pod's log as text (the client would otherwise try to parse it)."""
    response = core_v1.read_namespaced_pod_log(name, namespace, _preload_content=False)
    return response.data.decode(errors="replace")


def containers_ready(pod: client.V1Pod) -> bool:
    statuses = pod.status.container_statuses or []
    return bool(statuses) and all(s.ready for s in statuses)


def pod_phase(core_v1: client.CoreV1Api, namespace: str, name: str) -> tuple[str, str]:
    pod = core_v1.read_namespaced_pod(name, namespace)
    waiting = [
        f"{s.name}: {s.state.waiting.reason}"
        for s in pod.status.container_statuses or []
        if s.state and s.state.waiting
    ]
    return pod.status.phase, f"phase={pod.status.phase} {waiting or ''}".strip()


def run_to_completion(core_v1: client.CoreV1Api, namespace: str, manifest: dict[str, Any]) -> str:
    """Creates the pod, waits until it succeeds, returns its log; fails with the log otherwise."""
    name = manifest["metadata"]["name"]
    core_v1.create_namespaced_pod(namespace, manifest)

    def finished() -> tuple[bool, str]:
        phase, state = pod_phase(core_v1, namespace, name)
        return phase in ("Succeeded", "Failed"), state

    state = wait_until(f"pod {namespace}/{name} to finish", finished, POD_TIMEOUT_SECONDS)
    log = pod_log(core_v1, namespace, name)
    assert state.startswith("phase=Succeeded"), f"pod {name} did not succeed ({state}); log:\n{log}"
    return log


def wait_running(core_v1: client.CoreV1Api, namespace: str, name: str) -> None:
    def running() -> tuple[bool, str]:
        pod = core_v1.read_namespaced_pod(name, namespace)
        _, state = pod_phase(core_v1, namespace, name)
        return pod.status.phase == "Running" and containers_ready(pod), state

    wait_until(f"pod {namespace}/{name} to be Running and ready", running, POD_TIMEOUT_SECONDS)


def wait_service_endpoint(
    k8s_client: client.ApiClient, core_v1: client.CoreV1Api, namespace: str, service: str, pod: str
) -> None:
    """Waits until the Service's EndpointSlices list the pod's IP as ready."""
    pod_ip = core_v1.read_namespaced_pod(pod, namespace).status.pod_ip
    discovery = client.DiscoveryV1Api(k8s_client)

    def listed() -> tuple[bool, str]:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}"
        ).items
        ready = {
            address
            for endpoint_slice in slices
            for endpoint in endpoint_slice.endpoints or []
            if endpoint.conditions and endpoint.conditions.ready
            for address in endpoint.addresses
        }
        return pod_ip in ready, f"ready endpoints {sorted(ready)}"

    wait_until(f"Service {namespace}/{service} to list pod {pod} ({pod_ip}) as ready", listed, POD_TIMEOUT_SECONDS)


def wait_deleted(core_v1: client.CoreV1Api, namespace: str, name: str) -> None:
    def gone() -> tuple[bool, str]:
        try:
            _, state = pod_phase(core_v1, namespace, name)
        except client.ApiException as error:
            if error.status == 404:
                return True, "deleted"
            raise
        return False, state

    wait_until(f"pod {namespace}/{name} to be deleted", gone, POD_TIMEOUT_SECONDS)


# --- Tests -------------------------------------------------------------------------------------


def test_nodes_ready_kube_system_running_and_apiserver_ready(
    k8s_client: client.ApiClient, core_v1: client.CoreV1Api
) -> None:
    def nodes_ready() -> tuple[bool, dict[str, str]]:
        states = {}
        for node in core_v1.list_node().items:
            ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "Unknown")
            states[node.metadata.name] = ready
        return bool(states) and all(s == "True" for s in states.values()), states

    wait_until("every node to be Ready", nodes_ready, READY_TIMEOUT_SECONDS)

    def kube_system_running() -> tuple[bool, dict[str, str]]:
        pods = core_v1.list_namespaced_pod("kube-system").items
        states = {p.metadata.name: f"{p.status.phase}/ready={containers_ready(p)}" for p in pods}
        return bool(states) and all(s == "Running/ready=True" for s in states.values()), states

    wait_until("every kube-system pod to be Running and ready", kube_system_running, READY_TIMEOUT_SECONDS)

    response = k8s_client.call_api(
        "/readyz", "GET", auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True
    )
    assert (response.status, response.data) == (200, b"ok")


def test_project_image_pod_runs_to_completion(core_v1: client.CoreV1Api, namespace: str, project_image: str) -> None:
    script = "python -c 'import dagster, dagster_dbt; print(\"project image ok\", dagster.__version__)'"
    log = run_to_completion(core_v1, namespace, pod_manifest("project-image", project_image, script))
    assert "project image ok" in log


def test_pod_reaches_service_by_name(
    k8s_client: client.ApiClient, core_v1: client.CoreV1Api, namespace: str, probe_image: str, project_image: str
) -> None:
    token = uuid.uuid4().hex
    server = pod_manifest(
        "web",
        probe_image,
        f"mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 8080 -h /www",
        labels={"app": "web"},
        container={"readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2}},
    )
    core_v1.create_namespaced_pod(namespace, server)
    core_v1.create_namespaced_service(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    wait_running(core_v1, namespace, "web")
    wait_service_endpoint(k8s_client, core_v1, namespace, service="web", pod="web")

    # The client is the project's image: its glibc resolver, like the real workloads'. The short
    # name goes through the pod's DNS search path; the long one is the Service's FQDN. A ready
    # endpoint reaches each node's kube-proxy asynchronously, and until it has written the rules
    # the Service IP refuses connections (CI run 8 met that once): the client tries again for a
    # bounded time and says how many attempts it took.
    client_script = f"""
import itertools, socket, time, urllib.request
for host in ("web", "web.{namespace}.svc.cluster.local"):
    address = socket.gethostbyname(host)
    deadline = time.monotonic() + {KUBE_PROXY_SYNC_SECONDS}
    for attempt in itertools.count(1):
        try:
            body = urllib.request.urlopen(f"http://{{host}}/", timeout=5).read().decode().strip()
            break
        except OSError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"{{host}} ({{address}}) still unreachable after {{attempt}} attempts: {{error}}")
            time.sleep(1)
    print(f"{{host}} -> {{address}}: {{body}} (attempt {{attempt}})")
"""
    service_ip = core_v1.read_namespaced_service("web", namespace).spec.cluster_ip
    dns_client = pod_manifest("dns-client", project_image, "", container={"command": ["python", "-c", client_script]})
    log = run_to_completion(core_v1, namespace, dns_client)
    assert f"web -> {service_ip}: {token} (attempt" in log
    assert f"web.{namespace}.svc.cluster.local -> {service_ip}: {token} (attempt" in log


def test_default_storage_class_pvc_binds_and_keeps_data(
    k8s_client: client.ApiClient, core_v1: client.CoreV1Api, namespace: str, probe_image: str
) -> None:
    classes = client.StorageV1Api(k8s_client).list_storage_class().items
    defaults = [
        c.metadata.name for c in classes if (c.metadata.annotations or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
    ]
    assert len(defaults) == 1, f"expected one default StorageClass, found {defaults}"

    core_v1.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
        },
    )
    volume = {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        "container": {"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
    }
    token = uuid.uuid4().hex
    run_to_completion(
        core_v1, namespace, pod_manifest("writer", probe_image, f"echo {token} > /data/token && sync", **volume)
    )

    def bound() -> tuple[bool, str]:
        pvc = core_v1.read_namespaced_persistent_volume_claim("data", namespace)
        return pvc.status.phase == "Bound", f"{pvc.status.phase} class={pvc.spec.storage_class_name}"

    state = wait_until("PVC data to be Bound", bound, POD_TIMEOUT_SECONDS)
    assert state.endswith(f"class={defaults[0]}")

    core_v1.delete_namespaced_pod("writer", namespace)
    wait_deleted(core_v1, namespace, "writer")
    log = run_to_completion(core_v1, namespace, pod_manifest("reader", probe_image, "cat /data/token", **volume))
    assert log.strip() == token


def test_eviction_sends_sigterm_before_killing_job_pod(
    core_v1: client.CoreV1Api, batch_v1: client.BatchV1Api, namespace: str, probe_image: str
) -> None:
    # On TERM the container says so in its termination message and exits 143 by itself: had it
    # been killed (SIGKILL after the grace period), the exit code would be 137 and no message.
    script = (
        "trap 'echo SIGTERM received; echo graceful shutdown after SIGTERM > /dev/termination-log; exit 143' TERM; "
        "echo started; while true; do sleep 1; done"
    )
    template = pod_manifest("worker", probe_image, script, labels={"job-name": "graceful"})
    template["spec"]["terminationGracePeriodSeconds"] = EVICTION_GRACE_SECONDS
    batch_v1.create_namespaced_job(
        namespace,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "graceful"},
            "spec": {"backoffLimit": 0, "template": {"metadata": template["metadata"], "spec": template["spec"]}},
        },
    )

    def job_pod_started() -> tuple[bool, str | None]:
        pods = core_v1.list_namespaced_pod(namespace, label_selector="job-name=graceful").items
        running = [p for p in pods if p.status.phase == "Running"]
        if not running:
            return False, str([(p.metadata.name, p.status.phase) for p in pods])
        log = pod_log(core_v1, namespace, running[0].metadata.name)
        return "started" in log, running[0].metadata.name

    pod_name = wait_until("the Job's pod to run its TERM handler", job_pod_started, POD_TIMEOUT_SECONDS)
    resource_version = core_v1.read_namespaced_pod(pod_name, namespace).metadata.resource_version

    core_v1.create_namespaced_pod_eviction(
        pod_name,
        namespace,
        client.V1Eviction(metadata=client.V1ObjectMeta(name=pod_name, namespace=namespace)),
    )

    # Watch the pod until it is gone, keeping the last container state the kubelet reported.
    terminated = None
    deleted = False
    last_seen = "no event"
    stream = watch.Watch().stream(
        core_v1.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={pod_name}",
        resource_version=resource_version,
        timeout_seconds=EVICTION_GRACE_SECONDS + 60,
    )
    for event in stream:
        pod = event["object"]
        last_seen = f"{event['type']} phase={pod.status.phase} deletionTimestamp={pod.metadata.deletion_timestamp}"
        for status in pod.status.container_statuses or []:
            if status.state and status.state.terminated:
                terminated = status.state.terminated
        if event["type"] == "DELETED":
            deleted = True
            break
    assert deleted, f"evicted pod {pod_name} not deleted within {EVICTION_GRACE_SECONDS + 60}s; last: {last_seen}"
    assert terminated is not None, f"no terminated state was reported for {pod_name}; last: {last_seen}"
    assert (terminated.exit_code, (terminated.message or "").strip()) == (143, "graceful shutdown after SIGTERM")


def test_no_image_pull_was_ever_attempted(core_v1: client.CoreV1Api) -> None:
    """Runs last: every pod of this suite and of the cluster itself started from preloaded images."""
    events = core_v1.list_event_for_all_namespaces().items
    pulls = [
        f"{e.metadata.namespace}/{e.involved_object.name}: {e.message}"
        for e in events
        if e.reason == "Pulling" or "Pulling image" in (e.message or "")
    ]
    assert not pulls, "image pulls were attempted:\n" + "\n".join(pulls)
    present = [e for e in events if e.reason == "Pulled" and "already present" in (e.message or "")]
    assert present, "no 'already present on machine' event: the check above saw no container start"
