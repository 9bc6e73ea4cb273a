"""Fixtures of the fast suite: a real PostgreSQL server, a fresh warehouse database and a
fresh Dagster instance (PostgreSQL storage, the chart's pools/retries/monitoring) per test."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from filelock import FileLock

from dagster_code.local.instance import (
    apply_pool_limits,
    instance_config,
    pool_limits,
    write_dagster_home,
)
from dagster_code.local.postgres_server import PostgresServer, start_postgres_server
from dagster_code.project import dbt_project
from dagster_code.project_definitions import build_definitions

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    server = start_postgres_server()
    yield server
    server.stop()


def _database_name(prefix: str, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())
    return f"{prefix}_{name}"[:63]


def warehouse_env(pg: PostgresServer, database: str) -> dict[str, str]:
    """The environment dbt's `postgres` target reads (profiles.yml)."""
    return {
        "DBT_TARGET": "postgres",
        "DBT_PG_HOST": pg.host,
        "DBT_PG_PORT": str(pg.port),
        "DBT_PG_USER": pg.user,
        "DBT_PG_PASSWORD": pg.password,
        "DBT_PG_DATABASE": database,
        "DBT_THREADS": "2",
        "DO_NOT_TRACK": "1",
    }


# One database name for every test's warehouse (recreated empty per test): dbt hashes the
# rendered profile, and a changed database name would make every dbt call re-parse.
WAREHOUSE_DATABASE = "warehouse"
DBT_PARSE_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="session")
def dbt_manifest(pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Installs the project's packages and parses it once per suite run, as the image build does;
    definitions load from it. Under pytest-xdist every worker asks for it: the first does it, under
    a lock, and the others must not rewrite target/manifest.json while another worker's
    definitions read it."""
    basetemp = tmp_path_factory.getbasetemp()
    # Each xdist worker has its own basetemp; their parent is the run's, shared by all workers.
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    parsed_marker = shared / "dbt-manifest-parsed"
    with FileLock(shared / "dbt-manifest.lock", timeout=DBT_PARSE_TIMEOUT_SECONDS):
        if not parsed_marker.exists():
            env = {**os.environ, **warehouse_env(pg, WAREHOUSE_DATABASE)}
            for command in ("deps", "parse"):
                subprocess.run(
                    ["dbt", command, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
                    env=env,
                    check=True,
                    capture_output=True,
                    timeout=DBT_PARSE_TIMEOUT_SECONDS,
                )
            parsed_marker.touch()
    return DBT_PROJECT_DIR / "target" / "manifest.json"


@pytest.fixture
def warehouse(pg: PostgresServer, dbt_manifest: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty warehouse database; dbt and the raw-data assets point at it."""
    conninfo = pg.create_database(WAREHOUSE_DATABASE)
    for key, value in warehouse_env(pg, WAREHOUSE_DATABASE).items():
        monkeypatch.setenv(key, value)
    return conninfo


@pytest.fixture
def instance(
    pg: PostgresServer, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance on its own PostgreSQL database, configured from the chart's values."""
    database = _database_name("dagster", request)
    pg.create_database(database)
    storage = {
        "hostname": pg.host,
        "port": pg.port,
        "username": pg.user,
        "password": pg.password,
        "db_name": database,
    }
    dagster_home = tmp_path / "dagster_home"
    write_dagster_home(dagster_home, instance_config(storage))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as dagster_instance:
        apply_pool_limits(dagster_instance, pool_limits())
        yield dagster_instance


@pytest.fixture(scope="session")
def defs(dbt_manifest: Path) -> dg.Definitions:
    return build_definitions(dbt_project())


# The log's end printed at teardown; the daemon's own lines (not its run workers') are all printed.
DAEMON_LOG_TAIL_LINES = 60


@pytest.fixture
def daemon(instance: dg.DagsterInstance, warehouse: str, tmp_path: Path):
    """A real dagster-daemon and code server on the test's instance and warehouse. The end of their
    log is printed at teardown, which pytest shows only with a failure: CI keeps no temporary
    directory."""
    from tests.daemon import running_daemon

    log_path = tmp_path / "dagster-daemon.log"
    with running_daemon(log_path) as local_daemon:
        yield local_daemon
    lines = log_path.read_text(errors="replace").splitlines()
    print(f"the daemon's lines of {log_path}:", *(line for line in lines if "dagster.daemon" in line), sep="\n")
    print(f"its last {DAEMON_LOG_TAIL_LINES} lines:", *lines[-DAEMON_LOG_TAIL_LINES:], sep="\n")
