"""postgresqlClient: the timeouts and keepalives every PostgreSQL connection of the project's
containers and run pods gets, as a libpq connection service (PGSERVICEFILE, PGSERVICE).

Rendered: the service file holds the values, and every container given PGSERVICE mounts the file
where PGSERVICEFILE points (a container without it could not connect at all). On a real
PostgreSQL: a connection opened as dbt opens it (explicit host, port, user, no timeouts of its own)
takes the service's settings, and when its packets are dropped without a reset mid-query
(iptables on loopback, the partition of k8s_tests) it fails within the configured bound, with an
error the platform counts as a lost connection (retried), instead of hanging."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from chart_render import assert_refused, run_worker_job

from dagster_code.local.postgres_server import PostgresServer, start_postgres_server
from dagster_code.retries import lost_warehouse_connection

SERVICE_FILE_KEY = "pg_service.conf"
DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
# Idle 10 s, then 3 probes 5 s apart (about 25 s), bounded by tcp_user_timeout (30 s); the rest
# is slack for a loaded machine. Without the service, libpq keeps the kernel's defaults: two hours
# before the first keepalive probe.
PARTITION_DETECTED_WITHIN_SECONDS = 60


def service_parameters(text: str) -> tuple[str, dict[str, str]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0].startswith("[") and lines[0].endswith("]"), lines[0]
    return lines[0][1:-1], dict(line.split("=", 1) for line in lines[1:])


def test_service_file_holds_the_values(render):
    rendered = render()
    env = rendered.configmap_data("-env")
    name, parameters = service_parameters(rendered.configmap_data("-instance")[SERVICE_FILE_KEY])
    assert name == env["PGSERVICE"]
    assert env["PGSERVICEFILE"].endswith("/" + SERVICE_FILE_KEY)
    assert parameters == DEFAULTS

    changed = render(
        set_values={"postgresqlClient.keepalivesIdleSeconds": "30", "postgresqlClient.tcpUserTimeoutSeconds": "120"}
    )
    _, parameters = service_parameters(changed.configmap_data("-instance")[SERVICE_FILE_KEY])
    assert parameters == {**DEFAULTS, "keepalives_idle": "30", "tcp_user_timeout": "120000"}


def containers_with_env(rendered) -> Iterator[tuple[str, dict, list[dict]]]:
    """(where, container, pod volumes) of every container, init containers too, given the env
    ConfigMap, run pods included."""
    env_name = rendered.one("ConfigMap", "-env")["metadata"]["name"]
    run_job = run_worker_job(rendered.instance_config()["run_launcher"]["config"])
    specs = [*rendered.pod_specs(), ("run worker Job", run_job["spec"]["template"]["spec"])]
    for where, spec in specs:
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            sources = container.get("envFrom", [])
            if any((source.get("configMapRef") or {}).get("name") == env_name for source in sources):
                yield f"{where}/{container['name']}", container, spec.get("volumes", [])


@pytest.mark.parametrize("values_file", [None, "code-locations-values.yaml"], ids=["defaults", "code-locations"])
def test_every_container_given_pgservice_mounts_the_service_file(render, values_file):
    from chart_render import CHART_DIR

    rendered = render(CHART_DIR / "ci" / values_file if values_file else None)
    env = rendered.configmap_data("-env")
    instance_name = rendered.one("ConfigMap", "-instance")["metadata"]["name"]
    seen = []
    for where, container, volumes in containers_with_env(rendered):
        mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == env["PGSERVICEFILE"]]
        assert len(mounts) == 1, f"{where}: PGSERVICE set, but nothing mounted at {env['PGSERVICEFILE']}"
        assert mounts[0]["subPath"] == SERVICE_FILE_KEY, where
        (volume,) = [v for v in volumes if v["name"] == mounts[0]["name"]]
        assert volume["configMap"]["name"] == instance_name, where
        seen.append(where)
    assert any(where.startswith("run worker Job") for where in seen)
    assert len(seen) >= 7, seen  # webserver, daemon, code location(s), both hooks and their waits, run pods
    assert any(where.endswith("/wait-for-database") for where in seen), seen


@pytest.mark.parametrize("key", ["keepalivesCount", "tcpUserTimeoutSeconds"])
def test_a_timeout_below_one_is_refused(helm, tmp_path, key):
    assert_refused(helm, tmp_path, {"postgresqlClient": {key: 0}}, key)


# --- On a real PostgreSQL ----------------------------------------------------------------------


def loopback_drop_rules(port: int) -> list[list[str]]:
    """Both directions of the server's traffic on loopback, dropped without a reset."""
    return [
        ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(port), "-j", "DROP"],
        ["INPUT", "-i", "lo", "-p", "tcp", "--sport", str(port), "-j", "DROP"],
    ]


@pytest.fixture
def partitionable_server() -> Iterator[PostgresServer]:
    """A server of this test's own: its port is cut off, no other test's server."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        pytest.skip("needs root and iptables, to drop the server's packets on loopback")
    server = start_postgres_server()
    yield server
    server.stop()


@pytest.fixture
def chart_service(render, tmp_path, monkeypatch) -> None:
    """The chart's connection service for this process, as its containers get it."""
    rendered = render()
    service_file = tmp_path / SERVICE_FILE_KEY
    service_file.write_text(rendered.configmap_data("-instance")[SERVICE_FILE_KEY])
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))
    monkeypatch.setenv("PGSERVICE", rendered.configmap_data("-env")["PGSERVICE"])


@contextmanager
def partitioned(server: PostgresServer) -> Iterator[float]:
    """The server's packets dropped inside the block; yields when the cut took effect."""
    rules = loopback_drop_rules(server.port)
    for rule in rules:
        subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        yield time.monotonic()
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-D", *rule], check=True)


def test_connection_partitioned_mid_query_fails_in_bounded_time(chart_service, partitionable_server):
    server = partitionable_server

    # As dbt-postgres connects: host, port, user, password, database, nothing else.
    conn = psycopg2.connect(
        host=server.host, port=server.port, user=server.user, password=server.password, dbname="postgres"
    )
    parameters = conn.get_dsn_parameters()
    assert {name: parameters.get(name) for name in DEFAULTS} == DEFAULTS

    outcome: dict[str, object] = {}

    def query() -> None:
        try:
            with conn.cursor() as cursor:
                cursor.execute("select pg_sleep(600)")
            outcome["error"] = None
        except psycopg2.Error as error:
            outcome["error"] = error
        outcome["ended"] = time.monotonic()

    worker = threading.Thread(target=query, daemon=True)
    worker.start()
    time.sleep(1)  # the query is on the server, its packets acknowledged: the client waits
    with partitioned(server) as cut_at:
        worker.join(PARTITION_DETECTED_WITHIN_SECONDS)
    assert "ended" in outcome, f"the query still hangs {PARTITION_DETECTED_WITHIN_SECONDS}s into the partition"
    error = outcome["error"]
    detected = outcome["ended"] - cut_at
    print(f"\n[partition on loopback] connection failed {detected:.1f}s after the cut: {error}")
    assert error is not None
    assert lost_warehouse_connection(str(error)), f"not counted as a lost connection: {error}"
    conn.close()


def test_connection_opened_during_a_partition_fails_in_bounded_time(chart_service, partitionable_server):
    """dbt opens connections all through a build: one opened while the server is cut off gives up
    at connect_timeout (the chaos soak met it: `... failed: timeout expired`), and that too is a
    lost connection, retried."""
    server = partitionable_server
    with partitioned(server) as cut_at, pytest.raises(psycopg2.OperationalError) as raised:
        psycopg2.connect(host=server.host, port=server.port, user=server.user, password=server.password)
    failed_after = time.monotonic() - cut_at
    print(f"\n[partition on loopback] new connection failed {failed_after:.1f}s after the cut: {raised.value}")
    assert failed_after < PARTITION_DETECTED_WITHIN_SECONDS
    assert lost_warehouse_connection(str(raised.value)), f"not counted as a lost connection: {raised.value}"
