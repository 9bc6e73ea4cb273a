"""The chart installed on a kind cluster, and how the suites and the benchmark reach it.

`run_up` is `hack/up.sh` itself (the script behind `make up`) with UP_STEPS, a namespace and the
kind test values (charts/dagster-dbt-k8s/ci/kind-values.yaml), so what is tested is the code path
a user runs; `connect` returns the handles on it (`Deployment`): port-forwards to the webserver
and PostgreSQL, the GraphQL API, the warehouse. Names of the chart's objects and settings are read
from the chart (Chart.yaml, values.yaml), never retyped.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

# The chart's values.yaml, its defaults: the one place for them (ci/kind-values.yaml changes none
# of the names the suites read). Imported by the suites from here.
from dagster_code.local.instance import chart_values
from k8s_tests.harness.cluster import ARTIFACTS_DIR, REPO_ROOT, KindCluster, kubectl_text, tool, wait_until
from k8s_tests.harness.dagster_api import DagsterApi
from tests.waiting import WaitTimeout

CHART_DIR = REPO_ROOT / "charts" / "dagster-dbt-k8s"
KIND_VALUES = CHART_DIR / "ci" / "kind-values.yaml"
UP_SCRIPT = REPO_ROOT / "hack" / "up.sh"
# Images (cached docker build), kind load, helm --wait, raw_data_job: generous on 2 shared cores.
UP_TIMEOUT_SECONDS = int(os.environ.get("CHAOS_UP_TIMEOUT_SECONDS", "1800"))
# More values files after ci/kind-values.yaml, space separated (e.g. another image tag to try).
EXTRA_VALUES_FILES = os.environ.get("CHAOS_EXTRA_VALUES", "").split()
PORT_FORWARD_READY_SECONDS = 60
HEALTHY_TIMEOUT_SECONDS = 300
# Deleting the namespace (PostgreSQL volume, run Jobs) takes about a minute on 2 cores.
NAMESPACE_GONE_TIMEOUT_SECONDS = 300


def chart_fullname(release: str) -> str:
    """`dagster-dbt-k8s.fullname` of charts/dagster-dbt-k8s/templates/helpers/_names.tpl, with no
    fullnameOverride or nameOverride (the suites set neither): <release>-<chart>, or the release
    name alone when it already contains the chart's name; at most 63 characters."""
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["name"]
    name = release if chart in release else f"{release}-{chart}"
    return name[:63].removesuffix("-")


RELEASE_NAME = "dagster"
FULLNAME = chart_fullname(RELEASE_NAME)


def component_name(component: str) -> str:
    """`dagster-dbt-k8s.componentName` of _names.tpl: a component's objects (Deployment, Service,
    the PostgreSQL Secret) are named <fullname, at most 40 characters>-<component>."""
    return f"{FULLNAME[:40].removesuffix('-')}-{component}"


_VALUES = chart_values()
WEBSERVER_SERVICE = component_name("webserver")
POSTGRESQL_SERVICE = component_name("postgresql")
# The tests read the warehouse as dbt writes it: as the embedded server's warehouse role.
WAREHOUSE_USER = _VALUES["postgresql"]["warehouseUser"]
WAREHOUSE_PASSWORD_KEY = _VALUES["postgresql"]["warehousePasswordKey"]
# The superuser sees every role's sessions in pg_stat_activity (a test's view of the server).
SUPERUSER = _VALUES["postgresql"]["superuser"]
SUPERUSER_PASSWORD_KEY = _VALUES["postgresql"]["superuserPasswordKey"]
WAREHOUSE_DATABASE = _VALUES["warehouse"]["postgres"]["database"]
CODE_LOCATION = _VALUES["codeLocation"]["name"]


def wait_namespace_gone(core_v1: client.CoreV1Api, namespace: str) -> None:
    """Waits while `namespace` is terminating (a previous session's teardown), until it is gone."""

    def probe() -> tuple[bool, str]:
        try:
            found = core_v1.read_namespace(namespace)
        except client.ApiException as error:
            if error.status == 404:
                return True, "gone"
            raise
        return found.status.phase != "Terminating", f"namespace {namespace}: {found.status.phase}"

    wait_until(f"namespace {namespace} to finish terminating", probe, NAMESPACE_GONE_TIMEOUT_SECONDS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PortForward:
    """`kubectl port-forward` to a Service, restarted when the process has died (its pod went away)."""

    kubeconfig: Path
    namespace: str
    target: str
    remote_port: int
    local_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        """kubectl's stderr (a file, not a pipe: a pipe nobody reads fills up with its per-connection
        errors and stalls it)."""
        return ARTIFACTS_DIR / f"port-forward-{self.namespace}-{self.target.replace('/', '-')}-{self.local_port}.log"

    def why_exited(self) -> str:
        return f"exit code {self.process.returncode}: {self.log.read_text().strip()[-300:]}"

    def ensure(self) -> None:
        """Starts kubectl port-forward unless it runs; ConnectionError when it cannot listen."""
        if self.process is not None and self.process.poll() is None:
            return
        if self.process is not None:
            print(
                f"[port-forward] to {self.namespace}/{self.target} on port {self.local_port} had exited"
                f" ({self.why_exited()}); started again"
            )
        self.log.parent.mkdir(parents=True, exist_ok=True)
        log = self.log.open("w")
        self.process = subprocess.Popen(
            [
                tool("kubectl"),
                "--kubeconfig",
                str(self.kubeconfig),
                "-n",
                self.namespace,
                "port-forward",
                self.target,
                f"{self.local_port}:{self.remote_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        log.close()  # kubectl has its own descriptor

        def listening() -> tuple[bool, str]:
            if self.process.poll() is not None:
                return False, f"kubectl port-forward exited ({self.why_exited()})"
            try:
                with socket.create_connection(("127.0.0.1", self.local_port), timeout=2):
                    return True, "listening"
            except OSError as error:
                return False, repr(error)

        try:
            wait_until(f"port-forward to {self.namespace}/{self.target}", listening, PORT_FORWARD_READY_SECONDS, 0.5)
        except WaitTimeout as error:  # e.g. no pod behind the Service while a scenario replaces it
            self.stop()
            raise ConnectionError(str(error)) from error

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None  # stopped, not exited: ensure() starts it without saying it exited


@dataclass
class Deployment:
    """The chart installed in a namespace, and how the tests and the benchmark reach it."""

    cluster: KindCluster
    namespace: str
    core_v1: client.CoreV1Api
    batch_v1: client.BatchV1Api
    webserver: PortForward
    postgresql: PortForward
    # The warehouse role's and the superuser's passwords (read again by `refresh_passwords`).
    password: str
    superuser_password: str
    # Run ids a test touched, whose event logs are saved when it fails.
    runs_to_save: list[str] = field(default_factory=list)

    def webserver_url(self) -> str:
        self.webserver.ensure()
        return f"http://127.0.0.1:{self.webserver.local_port}"

    @property
    def api(self) -> DagsterApi:
        return DagsterApi(self.webserver_url, CODE_LOCATION)

    @property
    def warehouse(self) -> str:
        """psycopg conninfo of the warehouse database, through the port-forward."""
        return self.warehouse_through(self.postgresql)

    def warehouse_through(self, forward: PortForward) -> str:
        """The same through another port-forward to PostgreSQL (see `own_postgresql_forward`)."""
        forward.ensure()
        return (
            f"host=127.0.0.1 port={forward.local_port} dbname={WAREHOUSE_DATABASE} "
            f"user={WAREHOUSE_USER} password={self.password} connect_timeout=10"
        )

    @property
    def admin(self) -> str:
        """psycopg conninfo of the superuser (database postgres), through the port-forward."""
        self.postgresql.ensure()
        return (
            f"host=127.0.0.1 port={self.postgresql.local_port} dbname=postgres "
            f"user={SUPERUSER} password={self.superuser_password} connect_timeout=10"
        )

    def refresh_passwords(self) -> None:
        """Reads the passwords from the PostgreSQL Secret again (after a rotation)."""
        self.password, self.superuser_password = secret_passwords(self.core_v1, self.namespace)

    def own_postgresql_forward(self) -> PortForward:
        """A port-forward to PostgreSQL of its own, for a thread that may restart it without
        breaking the connections of the others."""
        return PortForward(self.cluster.kubeconfig, self.namespace, self.postgresql.target, self.postgresql.remote_port)

    def run_pods(self, run_id: str) -> list[client.V1Pod]:
        """Pods of the Kubernetes Job the launcher made for a run (Job dagster-run-<run id>)."""
        return self.core_v1.list_namespaced_pod(self.namespace, label_selector=f"job-name=dagster-run-{run_id}").items

    def component_pods(self, component: str) -> list[client.V1Pod]:
        return self.core_v1.list_namespaced_pod(
            self.namespace,
            label_selector=f"app.kubernetes.io/instance={RELEASE_NAME},app.kubernetes.io/component={component}",
        ).items


def run_up(
    cluster: KindCluster,
    namespace: str,
    steps: str,
    more_values: tuple[Path, ...] = (),
    project_image: str | None = None,
) -> None:
    """hack/up.sh (make up) with the test namespace and values (then `more_values`, for a test that
    upgrades the release, or one that installs `project_image`, the image its `load` step loads
    instead of PROJECT_IMAGE); its own port-forward is stopped after."""
    # up.sh leaves its port-forward running and writes its pid here: this run stops it.
    pid_file = Path(tempfile.mkdtemp(prefix="up-port-forward-")) / "port-forward.pid"
    env = {
        **os.environ,
        **({"PROJECT_IMAGE": project_image} if project_image else {}),
        "PORT_FORWARD_PID_FILE": str(pid_file),
        "CLUSTER_NAME": cluster.name,
        "KUBECONFIG_PATH": str(cluster.kubeconfig),
        "NAMESPACE": namespace,
        "RELEASE_NAME": RELEASE_NAME,
        "VALUES_FILES": " ".join([str(KIND_VALUES), *EXTRA_VALUES_FILES, *map(str, more_values)]),
        "LOCAL_PORT": str(free_port()),
        "UP_STEPS": steps,
    }
    start = time.monotonic()
    try:
        subprocess.run([str(UP_SCRIPT)], check=True, env=env, timeout=UP_TIMEOUT_SECONDS)
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        shutil.rmtree(pid_file.parent, ignore_errors=True)
    print(f"hack/up.sh ({steps}) took {time.monotonic() - start:.0f}s")


def image_values(image: str) -> dict[str, Any]:
    """Values that install `image` (repository:tag) as the project image."""
    repository, tag = image.rsplit(":", 1)
    return {"codeLocation": {"image": {"repository": repository, "tag": tag}}}


def uninstall(cluster: KindCluster, core_v1: client.CoreV1Api, namespace: str, wait: bool = True) -> None:
    """`helm uninstall`, then the namespace: the chart keeps the PostgreSQL Secret and volume on
    uninstall, a test namespace goes whole. Without `wait`, only the namespace is deleted (the
    release's own Secret goes with it), and the deletion goes on while the caller does not wait:
    for a namespace no later test reuses."""
    if not wait:
        core_v1.delete_namespace(namespace)
        return
    subprocess.run(
        [
            tool("helm"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "uninstall",
            RELEASE_NAME,
            "-n",
            namespace,
            "--wait",
            "--timeout",
            "5m",
        ],
        check=False,
        timeout=400,
    )
    core_v1.delete_namespace(namespace)
    wait_namespace_gone(core_v1, namespace)


def wait_location_loaded(deployment: Deployment, timeout: float = HEALTHY_TIMEOUT_SECONDS) -> None:
    def loaded() -> tuple[bool, str]:
        status = deployment.api.location_status()
        return status == "RepositoryLocation", f"code location {CODE_LOCATION}: {status}"

    wait_until("the webserver to answer and the code location to load", loaded, timeout)


def secret_passwords(core_v1: client.CoreV1Api, namespace: str) -> tuple[str, str]:
    """(the warehouse role's, the superuser's) password, from the PostgreSQL Secret."""
    # The PostgreSQL Secret has the component's name, as its Service does.
    data = core_v1.read_namespaced_secret(POSTGRESQL_SERVICE, namespace).data
    warehouse, superuser = (
        base64.b64decode(data[key]).decode() for key in (WAREHOUSE_PASSWORD_KEY, SUPERUSER_PASSWORD_KEY)
    )
    return warehouse, superuser


def connect(cluster: KindCluster, namespace: str, core_v1: client.CoreV1Api, batch_v1: client.BatchV1Api) -> Deployment:
    """Handles on the chart installed in `namespace` (by run_up), once its code location has loaded."""
    password, superuser_password = secret_passwords(core_v1, namespace)
    deployment = Deployment(
        cluster=cluster,
        namespace=namespace,
        core_v1=core_v1,
        batch_v1=batch_v1,
        webserver=PortForward(cluster.kubeconfig, namespace, f"svc/{WEBSERVER_SERVICE}", 80),
        postgresql=PortForward(cluster.kubeconfig, namespace, f"svc/{POSTGRESQL_SERVICE}", 5432),
        password=password,
        superuser_password=superuser_password,
    )
    wait_location_loaded(deployment)
    return deployment


def save_deployment_artifacts(directory: Path, deployment: Deployment) -> None:
    """Pods, events, every container's logs (and --previous logs) of the deployment's namespace, and
    the event logs of the runs the test touched, into `directory`/chaos, next to what
    harness.cluster.dump_artifacts saved."""
    target = directory / "chaos"
    target.mkdir(parents=True, exist_ok=True)
    ns = deployment.namespace
    cluster = deployment.cluster
    (target / "pods.txt").write_text(kubectl_text(cluster, "-n", ns, "get", "pods,jobs", "-o", "wide"))
    (target / "events.txt").write_text(kubectl_text(cluster, "-n", ns, "get", "events", "--sort-by=.lastTimestamp"))
    for pod in deployment.core_v1.list_namespaced_pod(ns).items:
        for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
            for previous in (False, True):
                args = ["-n", ns, "logs", pod.metadata.name, "-c", container.name]
                suffix = "-previous" if previous else ""
                text = kubectl_text(cluster, *args, *(["--previous"] if previous else []))
                if previous and "previous terminated container" in text and "not found" in text:
                    continue
                (target / f"log-{pod.metadata.name}-{container.name}{suffix}.txt").write_text(text)
    api = deployment.api
    for run_id in dict.fromkeys(deployment.runs_to_save):
        try:
            for run in api.run_group(run_id):
                api.save_event_log(run.run_id, target / f"run-{run.run_id}-events.jsonl")
        except Exception as error:  # the dump must never hide the test's own failure
            (target / f"run-{run_id}-events.error.txt").write_text(repr(error))
