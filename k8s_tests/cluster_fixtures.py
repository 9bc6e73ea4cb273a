"""Fixtures for suites that run on a real kind cluster.

The cluster comes from `k8s_tests/cluster/up.sh`, the script behind `make cluster`, unless
`--kind-cluster NAME` names one that already runs. Images reach the nodes with
`kind load docker-image`: nothing is ever pulled. Every wait goes through `wait_until`, which
raises with the last state it saw. When a test fails, `artifacts/<test id>/` gets the pod
listing, events, pod logs and `kind export logs`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from kubernetes import client, config

from dagster_code.local.cache import cache_dir
from tests import waiting

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_UP = REPO_ROOT / "k8s_tests" / "cluster" / "up.sh"
ARTIFACTS_DIR = REPO_ROOT / "artifacts"
# A cluster the suite creates itself gets its own name, so it never deletes one a person made.
TEST_CLUSTER_NAME = "dagster-dbt-k8s-test"
# A cold build of the node image takes most of an hour on two cores.
CLUSTER_UP_TIMEOUT_SECONDS = int(os.environ.get("CLUSTER_UP_TIMEOUT_SECONDS", "5400"))
PROBE_IMAGE = "localhost/dagster-dbt-k8s-probe:1"

T = TypeVar("T")


def read_versions() -> dict[str, str]:
    """KEY=VALUE pairs of versions.env, the one place for pinned versions."""
    versions = {}
    for line in (REPO_ROOT / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key] = value
    return versions


def tool(name: str) -> str:
    """A tool the cluster scripts installed (pinned, in the cache), else the one on PATH."""
    cached = cache_dir() / "bin" / name
    if cached.exists():
        return str(cached)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make cluster` once to install it")
    return found


def wait_until(description: str, probe: Callable[[], tuple[bool, T]], timeout: float, interval: float = 2.0) -> T:
    """tests.waiting.wait_until, where an error answer of the Kubernetes API means "not yet"."""
    return waiting.wait_until(description, probe, timeout, interval, tolerate=(client.ApiException,))


@dataclass(frozen=True)
class KindCluster:
    name: str
    kubeconfig: Path

    def run_kind(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([tool("kind"), *args], check=True, text=True, capture_output=True, timeout=timeout)

    def load_image(self, image: str) -> None:
        """`kind load docker-image`: the image goes into every node's containerd, no registry."""
        self.run_kind("load", "docker-image", image, "--name", self.name)

    def export_logs(self, directory: Path) -> None:
        self.run_kind("export", "logs", str(directory), "--name", self.name)


def _existing_clusters() -> list[str]:
    result = subprocess.run([tool("kind"), "get", "clusters"], check=True, text=True, capture_output=True, timeout=60)
    return result.stdout.split()


@pytest.fixture(scope="session")
def kind_cluster(request: pytest.FixtureRequest) -> Iterator[KindCluster]:
    """The cluster under test: --kind-cluster NAME, or one created by up.sh (make cluster)."""
    name = request.config.getoption("--kind-cluster") or TEST_CLUSTER_NAME
    # One file per cluster: sessions against two clusters may run side by side.
    kubeconfig = ARTIFACTS_DIR / f"kubeconfig-{name}"
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    created = False
    if request.config.getoption("--kind-cluster"):
        if name not in _existing_clusters():
            pytest.fail(f"--kind-cluster {name}: no such kind cluster (kind get clusters); run `make cluster`")
    else:
        layout = request.config.getoption("--cluster-layout")
        env = {**os.environ, "CLUSTER_NAME": name, "KUBECONFIG_PATH": str(kubeconfig)}
        subprocess.run([str(CLUSTER_UP), layout], check=True, env=env, timeout=CLUSTER_UP_TIMEOUT_SECONDS)
        created = True
    kubeconfig.write_text(
        subprocess.run(
            [tool("kind"), "get", "kubeconfig", "--name", name],
            check=True,
            text=True,
            capture_output=True,
            timeout=60,
        ).stdout
    )
    yield KindCluster(name=name, kubeconfig=kubeconfig)
    if created and not request.config.getoption("--keep-cluster"):
        subprocess.run([tool("kind"), "delete", "cluster", "--name", name], check=False, timeout=300)


@pytest.fixture(scope="session")
def k8s_client(kind_cluster: KindCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kind_cluster.kubeconfig))


@pytest.fixture(scope="session")
def core_v1(k8s_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(k8s_client)


@pytest.fixture(scope="session")
def batch_v1(k8s_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(k8s_client)


@pytest.fixture(scope="module")
def namespace(request: pytest.FixtureRequest, core_v1: client.CoreV1Api) -> Iterator[str]:
    """A namespace per test module, kept until the module ends so its events stay readable."""
    module = re.sub(r"[^a-z0-9]+", "-", request.module.__name__.split(".")[-1].lower()).strip("-")
    name = f"{module}-{uuid.uuid4().hex[:6]}"[:63]
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    if not request.config.getoption("--keep-cluster"):
        core_v1.delete_namespace(name)


@pytest.fixture(scope="session")
def project_image(kind_cluster: KindCluster) -> str:
    """PROJECT_IMAGE (versions.env), loaded into the nodes. Fails, never skips, when absent."""
    image = read_versions()["PROJECT_IMAGE"]
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=60)
    if found.returncode != 0:
        pytest.fail(f"the project image {image} is not in the local Docker engine: build it with `make image`")
    kind_cluster.load_image(image)
    return image


@pytest.fixture(scope="session")
def probe_image(kind_cluster: KindCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2 MB busybox image (sh, httpd; its static wget cannot resolve names) for plumbing checks, made from the host's
    busybox-static (hack/docker-engine.sh installs it) with `docker import`: no pull."""
    exists = subprocess.run(["docker", "image", "inspect", PROBE_IMAGE], capture_output=True, timeout=60)
    if exists.returncode != 0:
        busybox = shutil.which("busybox")
        if not busybox:
            pytest.fail("busybox not found: apt-get install busybox-static (hack/docker-engine.sh does)")
        rootfs = tmp_path_factory.mktemp("probe-rootfs")
        (rootfs / "bin").mkdir()
        (rootfs / "tmp").mkdir()
        shutil.copy(busybox, rootfs / "bin" / "busybox")
        applets = subprocess.run([busybox, "--list"], check=True, text=True, capture_output=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                (rootfs / "bin" / applet).symlink_to("busybox")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "--change", "ENV PATH=/bin", "-", PROBE_IMAGE],
            stdin=tar.stdout,
            check=True,
            capture_output=True,
            timeout=120,
        )
        tar.wait(timeout=60)
    kind_cluster.load_image(PROBE_IMAGE)
    return PROBE_IMAGE


# --- Failure artifacts -------------------------------------------------------------------------


def _safe_call(fn: Callable[[], str]) -> str:
    try:
        return fn()
    except Exception as error:  # the dump must never hide the test's own failure
        return f"<failed: {error!r}>"


def dump_artifacts(directory: Path, cluster: KindCluster, core_v1: client.CoreV1Api, namespaces: list[str]) -> None:
    """Pod listing, events and pod logs of `namespaces`, and `kind export logs`, into `directory`."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)

    def pods() -> str:
        lines = []
        for pod in core_v1.list_pod_for_all_namespaces().items:
            statuses = pod.status.container_statuses or []
            states = ",".join(next(k for k, v in s.state.to_dict().items() if v) if s.state else "?" for s in statuses)
            lines.append(
                f"{pod.metadata.namespace}\t{pod.metadata.name}\t{pod.status.phase}\t{pod.spec.node_name}\t{states}"
            )
        return "\n".join(lines) + "\n"

    def events() -> str:
        lines = []
        for event in core_v1.list_event_for_all_namespaces().items:
            obj = event.involved_object
            lines.append(
                f"{event.last_timestamp or event.event_time}\t{event.metadata.namespace}\t"
                f"{obj.kind}/{obj.name}\t{event.type}\t{event.reason}\t{event.message}"
            )
        return "\n".join(sorted(lines)) + "\n"

    (directory / "pods.txt").write_text(_safe_call(pods))
    (directory / "events.txt").write_text(_safe_call(events))
    for ns in namespaces:
        for pod in _safe_list_pods(core_v1, ns):
            for container in pod.spec.containers:
                log = _safe_call(
                    lambda pod=pod, ns=ns, container=container: core_v1.read_namespaced_pod_log(
                        pod.metadata.name, ns, container=container.name
                    )
                )
                (directory / f"log-{ns}-{pod.metadata.name}-{container.name}.txt").write_text(log)
    _safe_call(lambda: cluster.export_logs(directory / "kind-logs") or "")


def _safe_list_pods(core_v1: client.CoreV1Api, namespace: str) -> list[client.V1Pod]:
    try:
        return core_v1.list_namespaced_pod(namespace).items
    except Exception:
        return []


def artifacts_dir_for(nodeid: str) -> Path:
    return ARTIFACTS_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.replace("::", "__"))


@pytest.fixture(autouse=True)
def cluster_artifacts_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed test that used the cluster, dump what a person needs to debug it."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed or "kind_cluster" not in request.fixturenames:
        return
    cluster = request.getfixturevalue("kind_cluster")
    core = request.getfixturevalue("core_v1")
    namespaces = ["kube-system", "local-path-storage"]
    if "namespace" in request.fixturenames:
        namespaces.append(request.getfixturevalue("namespace"))
    dump_artifacts(artifacts_dir_for(request.node.nodeid), cluster, core, namespaces)
