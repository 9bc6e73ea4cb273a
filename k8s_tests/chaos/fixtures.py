"""Session fixtures of the chaos suite, layered on the cluster fixtures (k8s_tests/cluster_fixtures.py)
and the harness (k8s_tests/harness/deployment.py):

cluster -> images built and loaded -> namespace -> `helm upgrade --install --wait` with
ci/kind-values.yaml -> webserver and code location healthy -> raw data loaded. The deployment
steps are `hack/up.sh` itself (the script behind `make up`) with UP_STEPS, a test namespace and
the test values, so the suite proves the same code path a user runs. `chaos_deployment` is the
example project for the whole session; `acme_deployment` another dbt project, for one module.

Registered in k8s_tests/conftest.py with `pytest_plugins`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
import yaml
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from kubernetes import client

from k8s_tests.harness.acme import ACME_SEEDS
from k8s_tests.harness.cluster import ImageMissing, KindCluster, artifacts_dir_for, built_image, dump_artifacts
from k8s_tests.harness.deployment import (
    Deployment,
    connect,
    image_values,
    run_up,
    save_deployment_artifacts,
    uninstall,
    wait_namespace_gone,
)
from k8s_tests.harness.release import failure_messages, wait_run_finished

CHAOS_NAMESPACE = os.environ.get("CHAOS_NAMESPACE", "dagster-chaos")
ACME_NAMESPACE = "dagster-acme"
# One dbt seed invocation in a run pod: pod start, definitions load, dbt start.
SEEDS_TIMEOUT_SECONDS = 600
# The fixtures that yield a Deployment, whose namespace a failed test's artifacts include.
DEPLOYMENT_FIXTURES = ("chaos_deployment", "acme_deployment")
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
        uninstall(kind_cluster, core_v1, namespace)


@pytest.fixture(scope="module")
def acme_deployment(
    request: pytest.FixtureRequest,
    kind_cluster: KindCluster,
    core_v1: client.CoreV1Api,
    batch_v1: client.BatchV1Api,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """A dbt project other than the example (tests/dbt_projects/acme) in its own image, installed
    by the same script and values in namespace ACME_NAMESPACE, healthy, its seeds loaded.
    Its namespace is deleted at the module's end (unless --keep-cluster): one Dagster instance at a
    time on the cores."""
    try:
        image = built_image("ACME_PROJECT_IMAGE", "make k8s-test-images")
    except ImageMissing as error:
        pytest.fail(str(error))
    values = tmp_path_factory.mktemp("acme-values") / "image-values.yaml"
    values.write_text(yaml.safe_dump(image_values(image)))
    namespace = ACME_NAMESPACE
    wait_namespace_gone(core_v1, namespace)
    run_up(kind_cluster, namespace, "load install port-forward", more_values=(values,), project_image=image)
    deployment = connect(kind_cluster, namespace, core_v1, batch_v1)
    seeds_run = deployment.api.launch_run(IMPLICIT_ASSET_JOB_NAME, assets=list(ACME_SEEDS))
    deployment.runs_to_save.append(seeds_run)
    seeded = wait_run_finished(deployment.api, seeds_run, SEEDS_TIMEOUT_SECONDS, f"the seeds {list(ACME_SEEDS)}")
    assert seeded.status == "SUCCESS", failure_messages(deployment.api, seeds_run)
    yield deployment
    deployment.webserver.stop()
    deployment.postgresql.stop()
    if not request.config.getoption("--keep-cluster"):
        # The next deployment installs while this namespace goes; a later session waits for it.
        uninstall(kind_cluster, core_v1, namespace, wait=False)


# --- Failure artifacts -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def chaos_artifacts_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Autouse from a plugin, so it is set up before (and torn down after) the cluster suite's own
    artifact fixture, which empties the test's directory before writing: ours lands next to it."""
    yield
    reports = [getattr(request.node, f"rep_{when}", None) for when in ("setup", "call")]
    used = [name for name in DEPLOYMENT_FIXTURES if name in request.fixturenames]
    if not any(r is not None and r.failed for r in reports) or not used:
        return
    try:
        deployment: Deployment = request.getfixturevalue(used[0])
    except Exception:  # the deployment itself failed to come up: the cluster-wide dump is all there is
        return
    directory = artifacts_dir_for(request.node.nodeid)
    if not (directory / "pods.txt").exists():
        # The cluster suite's fixture did not run (or ran first): take the cluster-wide dump too.
        dump_artifacts(directory, deployment.cluster, deployment.core_v1, ["kube-system", deployment.namespace])
    save_deployment_artifacts(directory, deployment)
    print(f"artifacts saved under {directory}")
