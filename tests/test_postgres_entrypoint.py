"""The embedded PostgreSQL image's entrypoint (images/postgres/entrypoint.sh), run as the chart runs
it against a real server: Dagster's and the warehouse's roles are login roles, not superusers, each
owning its databases; the warehouse role can do what a blue/green release does; and passwords
changed between two starts are the ones that work after the second."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dagster_code.local.postgres_server import BIN_DIR

ENTRYPOINT = Path(__file__).resolve().parents[1] / "images" / "postgres" / "entrypoint.sh"
START_TIMEOUT_SECONDS = 60
SUPERUSER = "postgres"
ROLES = "dagster:POSTGRES_DAGSTER_PASSWORD dbt:POSTGRES_WAREHOUSE_PASSWORD"
DATABASES = "dagster:dagster warehouse:dbt"
FIRST = {
    "POSTGRES_SUPERUSER_PASSWORD": "admin-1",
    "POSTGRES_DAGSTER_PASSWORD": "dagster-1",
    "POSTGRES_WAREHOUSE_PASSWORD": "dbt-1",
}
# Quotes, a dollar, a backslash and a space: the entrypoint must pass them through as they are.
SECOND = {
    "POSTGRES_SUPERUSER_PASSWORD": "admin 2'\"$x\\",
    "POSTGRES_DAGSTER_PASSWORD": "dagster-2'",
    "POSTGRES_WAREHOUSE_PASSWORD": 'dbt-2"$(true)',
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Entrypoint:
    """The entrypoint as the server's user (runuser when root), with PGDATA under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    def command(self, env: dict[str, str]) -> list[str]:
        assignments = [f"{key}={value}" for key, value in env.items()]
        cmd = [
            "env",
            *assignments,
            str(ENTRYPOINT),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            "fsync=off",
        ]
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def env(self, passwords: dict[str, str], **more: str) -> dict[str, str]:
        return {
            "PATH": f"{BIN_DIR}:/usr/bin:/bin",
            "PGDATA": str(self.root / "data"),
            "POSTGRES_SOCKET_DIR": str(self.root / "run"),
            "POSTGRES_SUPERUSER": SUPERUSER,
            "POSTGRES_ROLES": ROLES,
            "POSTGRES_DATABASES": DATABASES,
            **passwords,
            **more,
        }

    def start(self, passwords: dict[str, str]) -> None:
        log = (self.root / "server.log").open("a")
        self.process = subprocess.Popen(self.command(self.env(passwords)), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                psycopg.connect(
                    self.conninfo("dagster", passwords["POSTGRES_DAGSTER_PASSWORD"]), connect_timeout=2
                ).close()
                return
            except psycopg.OperationalError as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"the entrypoint's server took no login as dagster within {START_TIMEOUT_SECONDS}s "
                        f"({error}); its log:\n{(self.root / 'server.log').read_text()}"
                    ) from error
                time.sleep(0.3)

    def run_to_exit(self, passwords: dict[str, str], **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(self.env(passwords, **more)), capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop = [str(BIN_DIR / "pg_ctl"), "stop", "-D", str(self.root / "data"), "-m", "fast", "-w", "-t", "60"]
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *stop] if os.geteuid() == 0 else stop, check=True, capture_output=True
        )
        self.process.wait(timeout=60)

    def conninfo(self, user: str, password: str, dbname: str | None = None) -> str:
        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=self.port, user=user, password=password, dbname=dbname or user
        )


@pytest.fixture
def entrypoint() -> Iterator[Entrypoint]:
    root = Path(tempfile.mkdtemp(prefix="postgres-entrypoint-"))
    (root / "run").mkdir()
    if os.geteuid() == 0:
        server = pwd.getpwnam("postgres")
        for path in (root, root / "run"):
            os.chown(path, server.pw_uid, server.pw_gid)
    server = Entrypoint(root)
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def rows(conninfo: str, sql: str) -> list[tuple]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def test_roles_are_not_superusers_and_own_their_databases(entrypoint: Entrypoint) -> None:
    entrypoint.start(FIRST)
    admin = entrypoint.conninfo(SUPERUSER, FIRST["POSTGRES_SUPERUSER_PASSWORD"], "postgres")
    assert rows(
        admin, "select rolname, rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolcanlogin order by 1"
    ) == [
        ("dagster", False, False, False),
        ("dbt", False, False, False),
        (SUPERUSER, True, True, True),
    ]
    owners = dict(rows(admin, "select datname, pg_get_userbyid(datdba) from pg_database"))
    assert {"dagster": owners["dagster"], "warehouse": owners["warehouse"]} == {
        "dagster": "dagster",
        "warehouse": "dbt",
    }
    # What a blue/green release does (dagster_code/dbt_blue_green/macros): schemas and tables
    # created, moved between schemas, schemas swapped by renaming and dropped.
    warehouse = entrypoint.conninfo("dbt", FIRST["POSTGRES_WAREHOUSE_PASSWORD"], "warehouse")
    with psycopg.connect(warehouse, autocommit=True) as conn:
        for sql in (
            "create schema blue",
            "create schema green",
            "create table blue.orders as select 1 as id",
            "alter table blue.orders set schema green",
            "alter schema green rename to green_old",
            "drop schema green_old cascade",
            "create table public.seed (id int)",
        ):
            conn.execute(sql)
    # Neither role opens the other's database.
    for user, password, dbname in (
        ("dbt", FIRST["POSTGRES_WAREHOUSE_PASSWORD"], "dagster"),
        ("dagster", FIRST["POSTGRES_DAGSTER_PASSWORD"], "warehouse"),
    ):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(entrypoint.conninfo(user, password, dbname)).close()


def test_passwords_changed_between_starts_are_applied_and_the_old_refused(entrypoint: Entrypoint) -> None:
    entrypoint.start(FIRST)
    entrypoint.stop()
    entrypoint.start(SECOND)
    for user, key, dbname in (
        (SUPERUSER, "POSTGRES_SUPERUSER_PASSWORD", "postgres"),
        ("dagster", "POSTGRES_DAGSTER_PASSWORD", "dagster"),
        ("dbt", "POSTGRES_WAREHOUSE_PASSWORD", "warehouse"),
    ):
        assert rows(entrypoint.conninfo(user, SECOND[key], dbname), "select current_user") == [(user,)]
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(entrypoint.conninfo(user, FIRST[key], dbname)).close()
    assert "dagster-2'" not in (entrypoint.root / "server.log").read_text(), "a password reached the server's log"


def test_a_missing_password_or_superuser_is_refused_with_its_name(entrypoint: Entrypoint) -> None:
    missing = {key: value for key, value in FIRST.items() if key != "POSTGRES_WAREHOUSE_PASSWORD"}
    result = entrypoint.run_to_exit(missing)
    assert result.returncode != 0
    assert "POSTGRES_WAREHOUSE_PASSWORD is not set" in result.stderr and "role 'dbt'" in result.stderr, result.stderr
    entrypoint.start(FIRST)
    entrypoint.stop()
    # A cluster initialized with another superuser (an earlier image's, the Dagster user).
    result = entrypoint.run_to_exit(FIRST, POSTGRES_SUPERUSER="admin")
    assert result.returncode != 0
    assert "cannot log in as 'admin' (POSTGRES_SUPERUSER)" in result.stderr, result.stderr
