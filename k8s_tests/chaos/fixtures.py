"""Session fixtures of the chaos suite, layered on the cluster fixtures (k8s_tests/cluster_fixtures.py)
and the harness (k8s_tests/harness/deployment.py):

cluster -> images built and loaded -> namespace -> `helm upgrade --install --wait` with
ci/kind-values.yaml -> webserver and code location healthy -> raw data loaded. The deployment
steps are `hack/up.sh` itself (the script behind `make up`) with UP_STEPS, a test namespace and
the test values, so the suite proves the same code path a user runs.

Registered in k8s_tests/conftest.py with `pytest_plugins`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from kubernetes import client

from k8s_tests.harness.cluster import KindCluster, artifacts_dir_for, dump_artifacts, tool
from k8s_tests.harness.deployment import (
    RELEASE_NAME,
    Deployment,
    connect,
    run_up,
    save_deployment_artifacts,
    wait_namespace_gone,
)

CHAOS_NAMESPACE = os.environ.get("CHAOS_NAMESPACE", "dagster-chaos")
# The images come from `make image` (CI builds them first); building here would race with whatever
# else writes into the build context.
UP_STEPS = os.environ.get("CHAOS_UP_STEPS", "load install port-forward raw-data")


@pytest.fixture(scope="session")
def chaos_deployment(
    request: pytest.FixtureRequest, kind_cluster: KindCluster, core_v1: client.CoreV1Api, batch_v1: client.BatchV1Api
) -> Iterator[Deployment]:
    """The chart in namespace CHAOS_NAMESPACE, healthy, with raw data loaded. Uninstalled at the end
    unless --keep-cluster."""
    namespace = CHAOS_NAMESPACE
    wait_namespace_gone(core_v1, namespace)
    run_up(kind_cluster, namespace, UP_STEPS)
    deployment = connect(kind_cluster, namespace, core_v1, batch_v1)
    with psycopg.connect(deployment.warehouse) as conn:
        conn.execute("select count(*) from raw.orders").fetchone()
    yield deployment
    deployment.webserver.stop()
    deployment.postgresql.stop()
    if not request.config.getoption("--keep-cluster"):
        subprocess.run(
            [
                tool("helm"),
                "--kubeconfig",
                str(kind_cluster.kubeconfig),
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
        # The chart keeps the PostgreSQL Secret and volume on uninstall; the test namespace goes whole.
        core_v1.delete_namespace(namespace)
        wait_namespace_gone(core_v1, namespace)


# --- Failure artifacts -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def chaos_artifacts_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Autouse from a plugin, so it is set up before (and torn down after) the cluster suite's own
    artifact fixture, which empties the test's directory before writing: ours lands next to it."""
    yield
    reports = [getattr(request.node, f"rep_{when}", None) for when in ("setup", "call")]
    if not any(r is not None and r.failed for r in reports) or "chaos_deployment" not in request.fixturenames:
        return
    try:
        deployment: Deployment = request.getfixturevalue("chaos_deployment")
    except Exception:  # the deployment itself failed to come up: the cluster-wide dump is all there is
        return
    directory = artifacts_dir_for(request.node.nodeid)
    if not (directory / "pods.txt").exists():
        # The cluster suite's fixture did not run (or ran first): take the cluster-wide dump too.
        dump_artifacts(directory, deployment.cluster, deployment.core_v1, ["kube-system", deployment.namespace])
    save_deployment_artifacts(directory, deployment)
    print(f"artifacts saved under {directory}")
