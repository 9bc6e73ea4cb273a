"""A throwaway PostgreSQL server from the Debian packages, for tests and local runs.

Real PostgreSQL, not a mock: the warehouse dbt builds into and Dagster's run storage both
live here. The server listens on loopback only and is removed when stopped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

POSTGRES_MAJOR = os.environ.get("POSTGRES_MAJOR", "15")
BIN_DIR = Path(f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin")
SUPERUSER = "dagster"
PASSWORD = "local-only-password"
START_TIMEOUT_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; run them as the Debian 'postgres' user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    password: str = PASSWORD

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} password={self.password} dbname={dbname}"

    def create_database(self, name: str) -> str:
        """Creates (or recreates) an empty database and returns its conninfo."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
            conn.execute(f'create database "{name}"')
        return self.conninfo(name)

    def ensure_database(self, name: str) -> str:
        """Creates the database unless it exists (keeps its data); returns its conninfo."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'create database "{name}"')
        return self.conninfo(name)

    def stop(self, remove_data: bool = True) -> None:
        subprocess.run(
            _as_server_user([str(BIN_DIR / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast"]),
            check=False,
            capture_output=True,
        )
        if remove_data:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _init_data_dir(root: Path, data_dir: Path) -> None:
    pwfile = root / "pwfile"
    pwfile.write_text(PASSWORD)
    if os.geteuid() == 0:
        server_user = pwd.getpwnam("postgres")
        for path in (root, pwfile):
            os.chown(path, server_user.pw_uid, server_user.pw_gid)
    subprocess.run(
        _as_server_user(
            [
                str(BIN_DIR / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )


def start_postgres_server(
    root: Path | None = None, port: int | None = None, max_connections: int = 200
) -> PostgresServer:
    """Starts a server in `root` (a new temporary directory by default), initialising it
    on first use; a server whose `root` already holds data keeps that data."""
    if not (BIN_DIR / "pg_ctl").exists():
        raise RuntimeError(f"PostgreSQL {POSTGRES_MAJOR} server binaries not found in {BIN_DIR}; run `make setup`.")
    root = root or Path(tempfile.mkdtemp(prefix="dagster-dbt-pg-"))
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        server_user = pwd.getpwnam("postgres")
        os.chown(root, server_user.pw_uid, server_user.pw_gid)
    data_dir = root / "data"
    if not (data_dir / "PG_VERSION").exists():
        _init_data_dir(root, data_dir)
    server = PostgresServer(data_dir=data_dir, port=port or _free_port())
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={root} "
        f"-c fsync=off -c max_connections={max_connections}"
    )
    subprocess.run(
        _as_server_user(
            [
                str(BIN_DIR / "pg_ctl"),
                "start",
                "-D",
                str(data_dir),
                "-l",
                str(root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_SECONDS),
            ]
        ),
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            psycopg.connect(server.conninfo(), connect_timeout=2).close()
            return server
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL on port {server.port} did not accept connections within "
                    f"{START_TIMEOUT_SECONDS}s: {error}"
                ) from error
            time.sleep(0.5)
