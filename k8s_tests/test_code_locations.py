"""Three code locations in one instance, on kind: the example project (codeLocation) and two other
dbt projects, each in an image of its own (additionalCodeLocations) building in a database of its
own: tests/dbt_projects/acme (ACME_PROJECT_IMAGE), configured by dagster.yml, and
tests/dbt_projects/plain (PLAIN_PROJECT_IMAGE), a plain project with no dagster.yml and no jobs.
One workspace loads all three; a release of the example and of acme each succeeds; each run's pod
runs its own location's image with its own database; and neither release's green schema holds the
other's marts. The plain project, launched as the UI's "Materialize all" launches it and its run
pod evicted mid-build, is retried once from asset failure, nothing built twice (issue 28).
Last, the database roles (issue 29): Dagster's and the warehouse's roles are no superusers and own
their databases, and a `helm upgrade` that changes every password restarts the server and every
Dagster pod with them, after which the three locations load and a run succeeds.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from kubernetes import client

from k8s_tests.chaos.release_checks import (
    PARENT_FAILS_TIMEOUT_SECONDS,
    assert_retries_built_only_what_was_missing,
    wait_one_retry_finished,
    wait_paused_model_reached,
)
from k8s_tests.harness.acme import ACME_RELEASE, ACME_SEEDS
from k8s_tests.harness.cluster import KindCluster, tool, wait_until
from k8s_tests.harness.dagster_api import DagsterApi
from k8s_tests.harness.deployment import (
    CODE_LOCATION,
    POSTGRESQL_SERVICE,
    Deployment,
    chart_values,
    connect,
    run_up,
    wait_location_loaded,
)
from k8s_tests.harness.example import EXAMPLE_RELEASE
from k8s_tests.harness.faults import evict, running_run_pod
from k8s_tests.harness.release import RELEASE_TIMEOUT_SECONDS, failure_messages, wait_run_finished
from tests.support import GREEN

SECOND_LOCATION = "acme"
SECOND_DATABASE = "acme"
PLAIN_LOCATION = "plain"
PLAIN_DATABASE = "plain"
# tests/dbt_projects/plain's model whose pre-hook sleeps, and what its run builds before it.
PLAIN_PAUSED_MODEL = "fct_orders"
PLAIN_BUILT_BEFORE_PAUSE = frozenset({"raw_customers", "raw_orders", "stg_shop__customers", "stg_shop__orders"})
SEEDS_TIMEOUT_SECONDS = 600
LOCATION_LOADED_TIMEOUT_SECONDS = 300
# After `helm upgrade --wait` returns: the old ReplicaSets' pods scaled down.
PODS_REPLACED_TIMEOUT_SECONDS = 180


@pytest.fixture(scope="module")
def three_locations_values(acme_image: str, plain_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The values file that adds the two other locations (given again to a later `helm upgrade`)."""
    values = {
        "additionalCodeLocations": [
            {
                "name": name,
                "image": dict(zip(("repository", "tag"), image.rsplit(":", 1), strict=True)),
                "warehouseDatabase": database,
                # One server is enough here: no test of this module disrupts a code server.
                "replicas": 1,
            }
            for name, image, database in (
                (SECOND_LOCATION, acme_image, SECOND_DATABASE),
                (PLAIN_LOCATION, plain_image, PLAIN_DATABASE),
            )
        ]
    }
    values_file = tmp_path_factory.mktemp("locations") / "three-locations.yaml"
    values_file.write_text(yaml.safe_dump(values))
    return values_file


@pytest.fixture(scope="module")
def three_locations(
    kind_cluster: KindCluster,
    core_v1: client.CoreV1Api,
    batch_v1: client.BatchV1Api,
    namespace: str,
    three_locations_values: Path,
) -> Iterator[Deployment]:
    """The chart with the example as codeLocation, acme and plain as more locations (each its own
    database), installed by hack/up.sh with the suites' values; the example's raw data and acme's
    seeds loaded."""
    run_up(kind_cluster, namespace, "load install port-forward raw-data", more_values=(three_locations_values,))
    deployment = connect(kind_cluster, namespace, core_v1, batch_v1)
    for name in (SECOND_LOCATION, PLAIN_LOCATION):
        api = location_api(deployment, name)
        wait_until(
            f"code location {name} to load",
            lambda api=api: ((status := api.location_status()) == "RepositoryLocation", status),
            LOCATION_LOADED_TIMEOUT_SECONDS,
        )
    second = location_api(deployment, SECOND_LOCATION)
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
    three_locations: Deployment, project_image: str, acme_image: str, tmp_path: Path
) -> None:
    deployment = three_locations
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


def test_plain_projects_materialize_all_run_pod_evicted_retried_once_nothing_built_twice(
    three_locations: Deployment, plain_image: str
) -> None:
    """Issue 28: a project with no dagster.yml and no jobs, every asset launched through the implicit
    asset job as the UI's "Materialize all" does, its run pod evicted while fct_orders' pre-hook
    sleeps (seeds and staging done): one FROM_ASSET_FAILURE retry, given by the run coordinator to a
    run launched without a retry tag, builds exactly what the parent had not."""
    deployment = three_locations
    api = location_api(deployment, PLAIN_LOCATION)
    assert IMPLICIT_ASSET_JOB_NAME in api.job_names()
    assets = api.unpartitioned_asset_keys()
    assert PLAIN_BUILT_BEFORE_PAUSE | {PLAIN_PAUSED_MODEL} < assets, sorted(assets)
    launched_at = time.time()
    parent_id = api.launch_run(IMPLICIT_ASSET_JOB_NAME, assets=sorted(assets))
    deployment.runs_to_save.append(parent_id)
    wait_paused_model_reached(api, parent_id, PLAIN_BUILT_BEFORE_PAUSE, PLAIN_PAUSED_MODEL)
    pod = running_run_pod(deployment, parent_id)
    assert [c.image for c in pod.spec.containers] == [plain_image]
    fault_at = time.time()
    evict(deployment, pod)

    parent = wait_run_finished(api, parent_id, PARENT_FAILS_TIMEOUT_SECONDS, "the evicted parent run")
    assert parent.status == "FAILURE"
    assert parent.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION", parent.tags
    assert parent.tags.get("dagster/retry_strategy") == "FROM_ASSET_FAILURE", parent.tags
    assert parent.asset_selection == assets
    group = wait_one_retry_finished(api, parent_id)
    assert group[0].tags.get("dagster/will_retry") == "true", group[0].tags
    retry = group[-1]
    print(
        f"\n[plain materialize all] launch -> fault: {fault_at - launched_at:.1f}s; "
        f"fault -> parent failed: {parent.end_time - fault_at:.1f}s; "
        f"fault -> retry created: {retry.creation_time - fault_at:.1f}s; "
        f"fault -> retry started: {retry.start_time - fault_at:.1f}s; "
        f"fault -> group SUCCESS: {retry.end_time - fault_at:.1f}s; retry selection: {sorted(retry.asset_selection)}"
    )
    assert_retries_built_only_what_was_missing(api, group, assets)


def superuser_query(deployment: Deployment, sql: str) -> list[list[str]]:
    """`sql` run by psql as the superuser inside the PostgreSQL pod (kubectl exec), rows of fields."""
    # The password stays in the pod: psql reads it from the container's own env.
    script = (
        'PGPASSWORD="${POSTGRES_SUPERUSER_PASSWORD}" '
        'psql -h /var/run/postgresql -U "${POSTGRES_SUPERUSER}" -d postgres -AtF "|" -c "$0"'
    )
    result = subprocess.run(
        [
            tool("kubectl"),
            "--kubeconfig",
            str(deployment.cluster.kubeconfig),
            "-n",
            deployment.namespace,
            "exec",
            f"{POSTGRESQL_SERVICE}-0",
            "-c",
            "postgresql",
            "--",
            "bash",
            "-c",
            script,
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"psql in {POSTGRESQL_SERVICE}-0 failed: {result.stderr}"
    return [line.split("|") for line in result.stdout.splitlines()]


def test_dagster_and_the_warehouse_use_separate_roles_that_are_not_superusers(three_locations: Deployment) -> None:
    deployment = three_locations
    pg = chart_values()["postgresql"]
    roles = {
        name: (super_, create_role, create_db)
        for name, super_, create_role, create_db in superuser_query(
            deployment, "select rolname, rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolcanlogin"
        )
    }
    assert roles == {
        pg["superuser"]: ("t", "t", "t"),
        pg["user"]: ("f", "f", "f"),
        pg["warehouseUser"]: ("f", "f", "f"),
    }, roles
    owners = dict(superuser_query(deployment, "select datname, pg_get_userbyid(datdba) from pg_database"))
    expected = {pg["database"]: pg["user"]} | {
        name: pg["warehouseUser"]
        for name in (chart_values()["warehouse"]["postgres"]["database"], SECOND_DATABASE, PLAIN_DATABASE)
    }
    assert expected.items() <= owners.items(), owners
    # The warehouse role cannot even open Dagster's storage (runs, event logs).
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(database(deployment, pg["database"])).close()


def test_changed_passwords_are_applied_at_the_next_start_and_every_component_keeps_working(
    three_locations: Deployment, three_locations_values: Path, tmp_path: Path
) -> None:
    """A `helm upgrade` that changes the three passwords: the server applies them at its restart,
    the webserver, the daemon and the code servers restart with them (checksum annotations), the
    old password is refused, and the three locations load and the next release succeeds afterwards."""
    deployment = three_locations
    old_password = deployment.password
    components = ("postgresql", "webserver", "daemon", "code-location", "code-location-acme", "code-location-plain")
    before = {c: {p.metadata.uid for p in deployment.component_pods(c)} for c in components}
    assert all(before.values()), before
    rotated = {name: secrets.token_urlsafe(24) for name in ("password", "warehousePassword", "superuserPassword")}
    rotated_values = tmp_path / "rotated-passwords.yaml"
    rotated_values.write_text(yaml.safe_dump({"postgresql": rotated}))
    start = time.monotonic()
    run_up(deployment.cluster, deployment.namespace, "install", more_values=(three_locations_values, rotated_values))
    upgraded_at = time.monotonic()
    # The port-forwards led to pods that are gone: new ones on next use.
    deployment.webserver.stop()
    deployment.postgresql.stop()
    deployment.refresh_passwords()
    assert deployment.password == rotated["warehousePassword"]

    def replaced() -> tuple[bool, dict[str, int]]:
        """Components with a pod from before the upgrade that is not terminating (count of them)."""
        left = {}
        for component, uids in before.items():
            live = {
                p.metadata.uid for p in deployment.component_pods(component) if p.metadata.deletion_timestamp is None
            }
            if not live or live & uids:
                left[component] = len(live & uids)
        return not left, left

    wait_until("every component's pods from before the upgrade to be replaced", replaced, PODS_REPLACED_TIMEOUT_SECONDS)
    stale = deployment.warehouse.replace(f"password={deployment.password}", f"password={old_password}")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(stale).close()
    with psycopg.connect(deployment.admin) as conn:
        assert conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone() == (True,)
    wait_location_loaded(deployment)
    for name in (SECOND_LOCATION, PLAIN_LOCATION):
        api = location_api(deployment, name)
        wait_until(
            f"code location {name} to load after the rotation",
            lambda api=api: ((status := api.location_status()) == "RepositoryLocation", status),
            LOCATION_LOADED_TIMEOUT_SECONDS,
        )
    # The next release: the daemon launches it through acme's code server; its pod clones green to
    # blue, builds and promotes as dbt, with the new password.
    second = location_api(deployment, SECOND_LOCATION)
    run_id = second.launch_run(ACME_RELEASE.job)
    deployment.runs_to_save.append(run_id)
    run = wait_run_finished(second, run_id, RELEASE_TIMEOUT_SECONDS, f"{SECOND_LOCATION}'s release after the rotation")
    assert run.status == "SUCCESS", failure_messages(second, run_id)
    acme_green = tables_in(database(deployment, SECOND_DATABASE), GREEN)
    assert set(ACME_RELEASE.marts) <= acme_green, acme_green
    print(
        f"\n[password rotation] helm upgrade --wait: {upgraded_at - start:.0f}s; "
        f"then locations loaded and a release succeeded: {time.monotonic() - upgraded_at:.0f}s"
    )
