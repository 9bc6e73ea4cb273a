"""The kind cluster under the suites and the benchmark: created by `k8s_tests/cluster/up.sh` (the
script behind `make cluster`), reached with the tools it installed, waited on with bounded waits,
and dumped into `artifacts/` when something fails.

Images reach the nodes with `kind load docker-image`: nothing is ever pulled. Every wait goes
through `wait_until`, which raises with the last state it saw.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kubernetes import client

from dagster_code.local.cache import cache_dir
from tests import waiting

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_UP = REPO_ROOT / "k8s_tests" / "cluster" / "up.sh"
ARTIFACTS_DIR = REPO_ROOT / "artifacts"
# A cold build of the node image takes most of an hour on two cores.
CLUSTER_UP_TIMEOUT_SECONDS = int(os.environ.get("CLUSTER_UP_TIMEOUT_SECONDS", "5400"))

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


def built_image(versions_key: str, how: str) -> str:
    """The image versions.env names under `versions_key`; ImageMissing, saying `how` to build it,
    when the local Docker engine does not have it (the suites never build or pull one)."""
    image = read_versions()[versions_key]
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=60)
    if found.returncode != 0:
        raise ImageMissing(f"{image} ({versions_key}) is not in the local Docker engine: build it with `{how}`")
    return image


class ImageMissing(Exception):
    pass


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


def existing_clusters() -> list[str]:
    result = subprocess.run([tool("kind"), "get", "clusters"], check=True, text=True, capture_output=True, timeout=60)
    return result.stdout.split()


def create_cluster(name: str, kubeconfig: Path, layout: str) -> None:
    """k8s_tests/cluster/up.sh (make cluster): creates the cluster, or reuses it when it exists."""
    env = {**os.environ, "CLUSTER_NAME": name, "KUBECONFIG_PATH": str(kubeconfig)}
    subprocess.run([str(CLUSTER_UP), layout], check=True, env=env, timeout=CLUSTER_UP_TIMEOUT_SECONDS)


def connect_cluster(name: str, kubeconfig: Path) -> KindCluster:
    """The cluster `name`, its kubeconfig (re)written to `kubeconfig` by `kind get kubeconfig`."""
    kubeconfig.write_text(
        subprocess.run(
            [tool("kind"), "get", "kubeconfig", "--name", name],
            check=True,
            text=True,
            capture_output=True,
            timeout=60,
        ).stdout
    )
    return KindCluster(name=name, kubeconfig=kubeconfig)


def kubectl_text(cluster: KindCluster, *args: str) -> str:
    """`kubectl` with the cluster's kubeconfig; its output and errors as text, whatever it exits with."""
    result = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
        text=True,
        capture_output=True,
        timeout=120,
    )
    return result.stdout + result.stderr


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
