"""The benchmark's cluster and Helm release: the same scripts and harness as the chaos suite
(k8s_tests/cluster/up.sh, hack/up.sh through `run_up`), in a cluster and namespace of its own."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from kubernetes import client, config

from dagster_code.local.cache import cache_dir
from k8s_tests.harness.cluster import (
    REPO_ROOT,
    KindCluster,
    connect_cluster,
    create_cluster,
    existing_clusters,
    tool,
    wait_until,
)
from k8s_tests.harness.deployment import (
    CHART_DIR,
    RELEASE_NAME,
    Deployment,
    chart_values,
    component_name,
    connect,
    run_up,
    wait_location_loaded,
)

# Its own cluster, so a benchmark never touches a developer's cluster or CI's.
BENCH_CLUSTER_NAME = "dagster-dbt-k8s-bench"
BENCH_NAMESPACE = "dagster-bench"
POLL_INTERVAL_VALUE = "dagsterDaemon.runMonitoring.pollIntervalSeconds"
IMAGE_REPOSITORY_VALUE = "codeLocation.image.repository"
IMAGE_TAG_VALUE = "codeLocation.image.tag"
# Changed to restart a Deployment's pods, as `kubectl rollout restart` does.
RESTARTED_AT_ANNOTATION = "bench.dagster-dbt-k8s/restarted-at"
BUILD_IMAGES = REPO_ROOT / "hack" / "build-images.sh"
# A cached build repackages the dbt project, parses it and loads the definitions (twice: the smoke test).
IMAGE_BUILD_TIMEOUT_SECONDS = 1800
# kind load copies the whole image (about 700 MB) into the node.
KIND_LOAD_TIMEOUT_SECONDS = 600
# The daemon restarts on a config change (checksum annotation) and loads the workspace again.
DAEMON_RESTART_TIMEOUT_SECONDS = 600
# Pods that restart when the instance config changes (checksum annotation).
RESTARTED_COMPONENTS = ("daemon", "webserver", "code-location")
# Run monitoring fails dead runs; the event log consumer launches their retries.
RECOVERY_DAEMONS = ("MONITORING", "EVENT_LOG_CONSUMER")
# Daemons heartbeat every 30 s or so, after the workspace has loaded.
DAEMON_HEARTBEAT_TIMEOUT_SECONDS = 300


def bench_cluster(existing_name: str | None) -> KindCluster:
    """--kind-cluster NAME if given (it must exist), else the benchmark's own cluster, created or
    reused by k8s_tests/cluster/up.sh (the script behind `make cluster`)."""
    kubeconfig = cache_dir() / f"kubeconfig-{existing_name or BENCH_CLUSTER_NAME}"
    if existing_name:
        if existing_name not in existing_clusters():
            raise SystemExit(
                f"--kind-cluster {existing_name}: no such kind cluster (kind get clusters); run `make cluster`"
            )
        name = existing_name
    else:
        name = BENCH_CLUSTER_NAME
        create_cluster(name, kubeconfig, "single")
    return connect_cluster(name, kubeconfig)


def install(cluster: KindCluster, up_steps: str, poll_interval: int) -> Deployment:
    """hack/up.sh with the kind test values into BENCH_NAMESPACE, run monitoring polling every
    `poll_interval` seconds (the kind values poll every 5), then the handles the cases use."""
    values = Path(tempfile.mkdtemp(prefix="bench-values-")) / "poll-interval.yaml"
    values.write_text(yaml.safe_dump(nested({POLL_INTERVAL_VALUE: poll_interval})))
    run_up(cluster, BENCH_NAMESPACE, up_steps, more_values=(values,))
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return connect(cluster, BENCH_NAMESPACE, client.CoreV1Api(api_client), client.BatchV1Api(api_client))


def nested(settings: dict[str, object]) -> dict[str, object]:
    """{"a.b": 1} -> {"a": {"b": 1}}, as `helm --set` reads a dotted key."""
    tree: dict[str, object] = {}
    for dotted, value in settings.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


def helm_on_release(deployment: Deployment, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`helm <args>` against the release's cluster and namespace; raises when it fails."""
    return subprocess.run(
        [tool("helm"), "--kubeconfig", str(deployment.cluster.kubeconfig), "-n", deployment.namespace, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def release_values(deployment: Deployment, dotted_keys: list[str]) -> dict[str, object]:
    """Values the release runs with (`helm get values --all`), by their dotted keys."""
    completed = helm_on_release(deployment, ["get", "values", RELEASE_NAME, "--all", "-o", "json"], timeout=60)
    values = json.loads(completed.stdout)
    found = {}
    for dotted in dotted_keys:
        value = values
        for key in dotted.split("."):
            value = value[key]
        found[dotted] = value
    return found


def release_value(deployment: Deployment, dotted: str) -> object:
    """A value the release runs with, by its dotted key."""
    return release_values(deployment, [dotted])[dotted]


def chart_default_poll_interval() -> int:
    """The chart's shipped run-monitoring poll interval, read from values.yaml (its one place)."""
    return int(chart_values()["dagsterDaemon"]["runMonitoring"]["pollIntervalSeconds"])


@dataclass(frozen=True)
class ProjectImage:
    """An image of a generated dbt project that a case switches the release to: its name, what
    writes the project it packages, and release values set in the same upgrade."""

    name: str
    write_project: Callable[[], Path]
    settings: dict[str, str] = field(default_factory=dict)


def build_project_image(image: str, dbt_project: Path) -> float:
    """`make image`'s script with another tag and dbt project (PROJECT_IMAGE, DBT_PROJECT: a
    project outside the top of the repository is staged there, so that its packages.yml's local
    path to the blue/green package resolves in the image); returns its seconds. The bases and the
    dependency layers come from the Docker cache."""
    start = time.monotonic()
    env = {**os.environ, "PROJECT_IMAGE": image, "DBT_PROJECT": str(dbt_project)}
    subprocess.run([str(BUILD_IMAGES)], check=True, env=env, timeout=IMAGE_BUILD_TIMEOUT_SECONDS)
    print(f"built {image} from {dbt_project}: {time.monotonic() - start:.0f}s", flush=True)
    return time.monotonic() - start


@dataclass(frozen=True)
class ContainerMemory:
    """A container's memory, in MiB: `processes_peak` sums each process's peak resident set
    (VmHWM; an upper bound of the container's peak, as the processes may peak at different times);
    `cgroup_peak` is its memory cgroup's peak usage, page cache included (what the limit counts)."""

    processes_peak: float
    cgroup_peak: float


# Run in the container: every process's status (the two helpers' own too, left out below) and the
# cgroup's peak usage (v1, or v2's memory.peak).
MEMORY_SCRIPT = (
    "cat /proc/[0-9]*/status 2>/dev/null; "
    "echo cgroup_peak_bytes $(cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null"
    " || cat /sys/fs/cgroup/memory.peak)"
)
MEMORY_HELPERS = ("sh", "cat")
MEMORY_READ_TIMEOUT_SECONDS = 60


def container_memory(deployment: Deployment, pod: client.V1Pod) -> ContainerMemory:
    """`kubectl exec` into the pod's first container: the peaks of ContainerMemory."""
    output = subprocess.run(
        [
            tool("kubectl"),
            "--kubeconfig",
            str(deployment.cluster.kubeconfig),
            "-n",
            deployment.namespace,
            "exec",
            pod.metadata.name,
            "--",
            "sh",
            "-c",
            MEMORY_SCRIPT,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=MEMORY_READ_TIMEOUT_SECONDS,
    ).stdout
    peak_kib, name, cgroup_bytes = 0, "", None
    for line in output.splitlines():
        key, _, value = line.partition(":") if ":" in line else line.partition(" ")
        if key == "Name":
            name = value.strip()
        elif key == "VmHWM" and name not in MEMORY_HELPERS:
            peak_kib += int(value.split()[0])
        elif key == "cgroup_peak_bytes":
            cgroup_bytes = int(value)
    if not peak_kib or cgroup_bytes is None:
        raise RuntimeError(f"no process or cgroup memory read in pod {pod.metadata.name}:\n{output[-2000:]}")
    return ContainerMemory(processes_peak=peak_kib / 1024, cgroup_peak=cgroup_bytes / 2**20)


def set_poll_interval(deployment: Deployment, seconds: int) -> None:
    """The daemon's run-monitoring poll interval; see `upgrade_release` (none when the release
    already polls so: an upgrade runs the hooks and restarts the daemon)."""
    if int(release_value(deployment, POLL_INTERVAL_VALUE)) == seconds:
        print(f"the release polls every {seconds}s already", flush=True)
        return
    upgrade_release(deployment, {POLL_INTERVAL_VALUE: str(seconds)})


def use_project_image(deployment: Deployment, image: str, settings: dict[str, str] | None = None) -> float | None:
    """Every pod of the release on `image` (loaded into the cluster first), with `settings` set in
    the same upgrade; returns the seconds from the upgrade to the webserver serving the
    definitions of that image's dbt project, or None when the release already runs this build of
    `image` with `settings` (nothing restarts: --quick's cases 3 and 6 share one image)."""
    start = time.monotonic()
    subprocess.run(
        [tool("kind"), "load", "docker-image", image, "--name", deployment.cluster.name],
        check=True,
        timeout=KIND_LOAD_TIMEOUT_SECONDS,
    )
    print(f"kind load {image}: {time.monotonic() - start:.0f}s", flush=True)
    repository, tag = image.rsplit(":", 1)
    wanted = {IMAGE_REPOSITORY_VALUE: repository, IMAGE_TAG_VALUE: tag, **(settings or {})}
    running = release_values(deployment, list(wanted))
    if all(str(running[key]) == str(value) for key, value in wanted.items()) and serves_loaded_build(deployment, image):
        print(f"the release runs this build of {image} with {settings or 'its values'} already", flush=True)
        return None
    upgraded_at = time.monotonic()
    upgrade_release(deployment, wanted)
    # The webserver and the daemon restart beside the code servers and may load the location from
    # an old one, which they keep (seen: a run launched on the old image and job); once only new
    # code servers are left, restart them again.
    reloaders = ("webserver", "daemon")
    old_pods = pod_names(deployment, reloaders)
    for component in reloaders:
        restart_component(deployment, component)
    wait_restarted(deployment, f"the webserver and daemon restarted on {image}", reloaders, old_pods, time.monotonic())
    return time.monotonic() - upgraded_at


def serves_loaded_build(deployment: Deployment, image: str) -> bool:
    """Whether every code server runs the build of `image` its node holds (the one `kind load`
    put there): a tag rebuilt from another project is another image, of another digest."""
    for pod in deployment.component_pods("code-location"):
        inspected = subprocess.run(
            ["docker", "exec", pod.spec.node_name, "crictl", "inspecti", "-o", "json", image],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        digests = json.loads(inspected)["status"]["repoDigests"]
        if any(status.image_id not in digests for status in pod.status.container_statuses or []):
            return False
    return True


def restart_component(deployment: Deployment, component: str) -> None:
    """A rollout of one component's Deployment (`kubectl rollout restart`: a new pod template)."""
    apps_v1 = client.AppsV1Api(deployment.core_v1.api_client)
    stamp = datetime.now(UTC).isoformat()
    apps_v1.patch_namespaced_deployment(
        component_name(component),
        deployment.namespace,
        {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}},
    )


def upgrade_release(deployment: Deployment, settings: dict[str, str]) -> float:
    """`helm upgrade --reuse-values --set` each setting, then waits until the old pods are gone and
    the new ones are ready: a fault before that would be watched by the old daemon. Returns the
    seconds from the upgrade to the code location loaded in the webserver again."""
    start = time.monotonic()
    generations = template_generations(deployment)
    old_pods = {component: pod_names(deployment, (component,)) for component in RESTARTED_COMPONENTS}
    described = ", ".join(f"{key}={value}" for key, value in settings.items())
    set_args = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    helm_on_release(
        deployment,
        ["upgrade", RELEASE_NAME, str(CHART_DIR), "--reuse-values", *set_args, "--wait", "--timeout", "10m"],
        timeout=DAEMON_RESTART_TIMEOUT_SECONDS + 60,
    )
    # Only the Deployments whose pod template changed roll (e.g. not when a value is set again).
    rolled = {
        component
        for component, generation in template_generations(deployment).items()
        if generation != generations[component]
    }
    replaced = {name for component in rolled for name in old_pods[component]}
    return wait_restarted(deployment, f"the release upgraded with {described}", RESTARTED_COMPONENTS, replaced, start)


def template_generations(deployment: Deployment) -> dict[str, int]:
    apps_v1 = client.AppsV1Api(deployment.core_v1.api_client)
    return {
        component: apps_v1.read_namespaced_deployment(
            component_name(component), deployment.namespace
        ).metadata.generation
        for component in RESTARTED_COMPONENTS
    }


def pod_names(deployment: Deployment, components: tuple[str, ...]) -> set[str]:
    return {pod.metadata.name for component in components for pod in deployment.component_pods(component)}


def wait_restarted(
    deployment: Deployment, what: str, components: tuple[str, ...], old_pods: set[str], start: float
) -> float:
    """Waits until the pods of `components` are all new (none of `old_pods`) and ready, and the new
    daemon's recovery daemons heartbeat: a fault before that would be watched by the old daemon.
    Returns the seconds from `start` to the code location loaded in the webserver again."""
    apps_v1 = client.AppsV1Api(deployment.core_v1.api_client)
    replicas = {
        component: apps_v1.read_namespaced_deployment(component_name(component), deployment.namespace).spec.replicas
        for component in components
    }

    def only_new_pods_ready() -> tuple[bool, object]:
        pods = {component: deployment.component_pods(component) for component in components}
        ready = all(
            len(found) == replicas[component]
            and all(pod.metadata.name not in old_pods for pod in found)
            and all(any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []) for pod in found)
            for component, found in pods.items()
        )
        return ready, {
            component: [(p.metadata.name, p.status.phase) for p in found] for component, found in pods.items()
        }

    wait_until(
        f"the pods of {', '.join(components)} to be replaced ({what})",
        only_new_pods_ready,
        DAEMON_RESTART_TIMEOUT_SECONDS,
    )
    # The port-forward went to the old webserver pod.
    deployment.webserver.stop()
    wait_location_loaded(deployment)
    location_loaded = time.monotonic() - start
    (daemon,) = deployment.component_pods("daemon")
    restarted_at = daemon.status.container_statuses[0].state.running.started_at.timestamp()

    def heartbeats_since_restart() -> tuple[bool, object]:
        statuses = deployment.api.query(
            "{ instance { daemonHealth { allDaemonStatuses { daemonType lastHeartbeatTime } } } }"
        )["instance"]["daemonHealth"]["allDaemonStatuses"]
        beats = {s["daemonType"]: s["lastHeartbeatTime"] or 0 for s in statuses}
        return all(beats.get(d, 0) > restarted_at for d in RECOVERY_DAEMONS), beats

    wait_until(
        f"the new daemon's {' and '.join(RECOVERY_DAEMONS)} daemons to heartbeat",
        heartbeats_since_restart,
        DAEMON_HEARTBEAT_TIMEOUT_SECONDS,
    )
    print(f"{what}: new pods ready and heartbeating in {time.monotonic() - start:.0f}s", flush=True)
    return location_loaded
