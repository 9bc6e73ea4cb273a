"""Two code locations in one instance, on kind: the example project (codeLocation) and another dbt
project in an image of its own (additionalCodeLocations, tests/dbt_projects/acme in
ACME_PROJECT_IMAGE) building in a database of its own. One workspace loads both; a release of
each succeeds; each run's pod runs its own location's image with its own database; and neither
project's green schema holds the other's marts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from kubernetes import client

from k8s_tests.harness.acme import ACME_RELEASE, ACME_SEEDS
from k8s_tests.harness.cluster import KindCluster, wait_until
from k8s_tests.harness.dagster_api import DagsterApi
from k8s_tests.harness.deployment import CODE_LOCATION, Deployment, connect, run_up
from k8s_tests.harness.example import EXAMPLE_RELEASE
from k8s_tests.harness.release import RELEASE_TIMEOUT_SECONDS, failure_messages, wait_run_finished
from tests.support import GREEN

SECOND_LOCATION = "acme"
SECOND_DATABASE = "acme"
SEEDS_TIMEOUT_SECONDS = 600
LOCATION_LOADED_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="module")
def two_locations(
    kind_cluster: KindCluster,
    core_v1: client.CoreV1Api,
    batch_v1: client.BatchV1Api,
    namespace: str,
    acme_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """The chart with the example as codeLocation and acme as a second location (its own database),
    installed by hack/up.sh with the suites' values; the example's raw data and acme's seeds loaded."""
    repository, tag = acme_image.rsplit(":", 1)
    values = {
        "additionalCodeLocations": [
            {
                "name": SECOND_LOCATION,
                "image": {"repository": repository, "tag": tag},
                "warehouseDatabase": SECOND_DATABASE,
                # One server is enough here: no test of this module disrupts it.
                "replicas": 1,
            }
        ]
    }
    values_file = tmp_path_factory.mktemp("locations") / "two-locations.yaml"
    values_file.write_text(yaml.safe_dump(values))
    run_up(kind_cluster, namespace, "load install port-forward raw-data", more_values=(values_file,))
    deployment = connect(kind_cluster, namespace, core_v1, batch_v1)
    second = location_api(deployment, SECOND_LOCATION)
    wait_until(
        f"code location {SECOND_LOCATION} to load",
        lambda: ((status := second.location_status()) == "RepositoryLocation", status),
        LOCATION_LOADED_TIMEOUT_SECONDS,
    )
    seeds_run = second.launch_run(IMPLICIT_ASSET_JOB_NAME, assets=list(ACME_SEEDS))
    deployment.runs_to_save.append(seeds_run)
    seeded = wait_run_finished(second, seeds_run, SEEDS_TIMEOUT_SECONDS, f"{SECOND_LOCATION}'s seeds")
    assert seeded.status == "SUCCESS", failure_messages(second, seeds_run)
    yield deployment
    deployment.webserver.stop()
    deployment.postgresql.stop()


def location_api(deployment: Deployment, location: str) -> DagsterApi:
    return DagsterApi(deployment.webserver_url, location)


def database(deployment: Deployment, name: str) -> str:
    """The deployment's warehouse conninfo, on database `name` of the same server."""
    return " ".join(f"dbname={name}" if part.startswith("dbname=") else part for part in deployment.warehouse.split())


def tables_in(conninfo: str, schema: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("select table_name from information_schema.tables where table_schema = %s", (schema,))
        return {name for (name,) in rows}


def run_env(pod: client.V1Pod) -> dict[str, str | None]:
    (container,) = pod.spec.containers
    return {var.name: var.value for var in container.env or []}


def test_each_locations_release_runs_its_own_image_into_its_own_database(
    two_locations: Deployment, project_image: str, acme_image: str, tmp_path: Path
) -> None:
    deployment = two_locations
    apis = {CODE_LOCATION: deployment.api, SECOND_LOCATION: location_api(deployment, SECOND_LOCATION)}
    releases = {CODE_LOCATION: EXAMPLE_RELEASE, SECOND_LOCATION: ACME_RELEASE}
    images = {CODE_LOCATION: project_image, SECOND_LOCATION: acme_image}
    # Both launched at once: the release tag's concurrency limit (1) queues the second behind the first.
    run_ids = {name: apis[name].launch_run(releases[name].job) for name in apis}
    deployment.runs_to_save.extend(run_ids.values())
    for name, run_id in run_ids.items():
        run = wait_run_finished(apis[name], run_id, 2 * RELEASE_TIMEOUT_SECONDS, f"the release of {name}")
        assert run.status == "SUCCESS", failure_messages(apis[name], run_id)
        assert run.tags.get("dagster/image") == images[name], (name, run.tags)
        pods = deployment.run_pods(run_id)
        assert pods, f"no pod of {name}'s run {run_id}"
        assert {c.image for pod in pods for c in pod.spec.containers} == {images[name]}, name
    (second_pod, *_) = deployment.run_pods(run_ids[SECOND_LOCATION])
    assert run_env(second_pod).get("DBT_PG_DATABASE") == SECOND_DATABASE
    (first_pod, *_) = deployment.run_pods(run_ids[CODE_LOCATION])
    assert "DBT_PG_DATABASE" not in run_env(first_pod)  # the env ConfigMap's, the warehouse's own

    example_green = tables_in(deployment.warehouse, GREEN)
    acme_green = tables_in(database(deployment, SECOND_DATABASE), GREEN)
    assert set(EXAMPLE_RELEASE.marts) <= example_green, example_green
    assert set(ACME_RELEASE.marts) <= acme_green, acme_green
    # Marts of one name in both projects (dim_customers) exist in both databases; the others only
    # in their own project's.
    assert not (set(ACME_RELEASE.marts) - set(EXAMPLE_RELEASE.marts)) & example_green, example_green
    assert not (set(EXAMPLE_RELEASE.marts) - set(ACME_RELEASE.marts)) & acme_green, acme_green
