"""Fixtures for suites that run on a real kind cluster, layered on k8s_tests/harness/cluster.py.

The cluster comes from `k8s_tests/cluster/up.sh`, the script behind `make cluster`, unless
`--kind-cluster NAME` names one that already runs. When a test fails, `artifacts/<test id>/` gets
the pod listing, events, pod logs and `kind export logs`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from k8s_tests.harness.cluster import (
    ARTIFACTS_DIR,
    ImageMissing,
    KindCluster,
    artifacts_dir_for,
    built_image,
    connect_cluster,
    create_cluster,
    dump_artifacts,
    existing_clusters,
    tool,
)

# A cluster the suite creates itself gets its own name, so it never deletes one a person made.
TEST_CLUSTER_NAME = "dagster-dbt-k8s-test"
PROBE_IMAGE = "localhost/dagster-dbt-k8s-probe:1"


@pytest.fixture(scope="session")
def kind_cluster(request: pytest.FixtureRequest) -> Iterator[KindCluster]:
    """The cluster under test: --kind-cluster NAME, or one created by up.sh (make cluster)."""
    name = request.config.getoption("--kind-cluster") or TEST_CLUSTER_NAME
    # One file per cluster: sessions against two clusters may run side by side.
    kubeconfig = ARTIFACTS_DIR / f"kubeconfig-{name}"
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    created = False
    if request.config.getoption("--kind-cluster"):
        if name not in existing_clusters():
            pytest.fail(f"--kind-cluster {name}: no such kind cluster (kind get clusters); run `make cluster`")
    else:
        create_cluster(name, kubeconfig, request.config.getoption("--cluster-layout"))
        created = True
    yield connect_cluster(name, kubeconfig)
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


@pytest.fixture
def namespace_artifacts_on_setup_failure(
    request: pytest.FixtureRequest, kind_cluster: KindCluster, namespace: str
) -> Iterator[None]:
    """For a module that installs into its own namespace (pytestmark usefixtures): when its setup
    fails (a server or the chart not coming up), the namespace's pods, events and logs; the
    suite's own fixture saves them only for a failed test body."""
    yield
    report = getattr(request.node, "rep_setup", None)
    if report is not None and report.failed:
        core_v1 = request.getfixturevalue("core_v1")
        dump_artifacts(artifacts_dir_for(request.node.nodeid), kind_cluster, core_v1, [namespace])


def loaded_image(cluster: KindCluster, variable: str, make_target: str) -> str:
    """The image versions.env names `variable`, loaded into the nodes. Fails, never skips, when it
    was not built (by `make_target`)."""
    try:
        image = built_image(variable, make_target)
    except ImageMissing as error:
        pytest.fail(str(error))
    cluster.load_image(image)
    return image


@pytest.fixture(scope="session")
def project_image(kind_cluster: KindCluster) -> str:
    """PROJECT_IMAGE, the example's image."""
    return loaded_image(kind_cluster, "PROJECT_IMAGE", "make image")


@pytest.fixture(scope="session")
def acme_image(kind_cluster: KindCluster) -> str:
    """ACME_PROJECT_IMAGE, the image of tests/dbt_projects/acme."""
    return loaded_image(kind_cluster, "ACME_PROJECT_IMAGE", "make k8s-test-images")


@pytest.fixture(scope="session")
def plain_image(kind_cluster: KindCluster) -> str:
    """PLAIN_PROJECT_IMAGE, the image of tests/dbt_projects/plain."""
    return loaded_image(kind_cluster, "PLAIN_PROJECT_IMAGE", "make k8s-test-images")


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
