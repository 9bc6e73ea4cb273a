"""Runs the test dbt project (release_project/) through dbt-snowflake against the stand-in,
served over HTTP by fakesnow's server as dbt would reach Snowflake."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakesnow.server
import pytest
import snowflake.connector
import uvicorn
from dbt.cli.main import dbtRunner

from tests.snowflake.standin import SnowflakeStandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
RELEASE_PROJECT_DIR = Path(__file__).resolve().parent / "release_project"
BLUE_GREEN_PACKAGE_DIR = REPO_ROOT / "dagster_code" / "dbt_blue_green"
PROFILES_DIR = REPO_ROOT / "dbt_project"
RELEASE_TABLES = ["customers", "orders", "payments"]
SERVER_START_TIMEOUT_SECONDS = 30


@contextmanager
def standin_server() -> Iterator[tuple[SnowflakeStandIn, dict[str, Any]]]:
    """The stand-in installed and served over HTTP by fakesnow's server app (in a thread, as
    `fakesnow.server()` does; that helper is shadowed by its own submodule once imported).
    Yields the stand-in and the connector's connect kwargs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fakesnow.server.app, host="127.0.0.1", port=port, log_level="warning"))
    standin = SnowflakeStandIn()
    with standin.install():
        thread = threading.Thread(target=server.run, name="snowflake stand-in", daemon=True)
        thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"The Snowflake stand-in did not start on 127.0.0.1:{port} within "
                    f"{SERVER_START_TIMEOUT_SECONDS}s; see uvicorn's log above."
                )
            time.sleep(0.05)
        try:
            yield (
                standin,
                {
                    "account": "fakesnow",
                    "user": "standin",
                    "password": "standin",
                    "host": "127.0.0.1",
                    "port": port,
                    "protocol": "http",
                    "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
                    "network_timeout": 5,
                },
            )
        finally:
            server.should_exit = True
            thread.join(timeout=SERVER_START_TIMEOUT_SECONDS)


def snowflake_env(connect_kwargs: dict[str, Any], database: str, threads: int) -> dict[str, str]:
    """What dbt's `snowflake` target reads (dbt_project/profiles.yml), pointed at the stand-in."""
    return {
        "DBT_TARGET": "snowflake",
        "SNOWFLAKE_ACCOUNT": connect_kwargs["account"],
        "SNOWFLAKE_USER": connect_kwargs["user"],
        "SNOWFLAKE_PASSWORD": connect_kwargs["password"],
        "SNOWFLAKE_ROLE": "sysadmin",
        "SNOWFLAKE_WAREHOUSE": "standin",
        "SNOWFLAKE_DATABASE": database,
        "SNOWFLAKE_HOST": connect_kwargs["host"],
        "SNOWFLAKE_PORT": str(connect_kwargs["port"]),
        "SNOWFLAKE_PROTOCOL": connect_kwargs["protocol"],
        "DBT_BLUE_GREEN_PACKAGE_DIR": str(BLUE_GREEN_PACKAGE_DIR),
        "DBT_THREADS": str(threads),
        "DO_NOT_TRACK": "1",
    }


@dataclass
class ReleaseProject:
    """The test dbt project, copied to `project_dir`, pointed at the stand-in's `database`."""

    project_dir: Path
    connect_kwargs: dict[str, Any]
    database: str

    def env(self) -> dict[str, str]:
        return snowflake_env(self.connect_kwargs, self.database, threads=1)

    def dbt(self, *args: str, monkeypatch: pytest.MonkeyPatch) -> bool:
        """Runs dbt in-process; returns whether it succeeded (an injected crash fails it)."""
        for name, value in self.env().items():
            monkeypatch.setenv(name, value)
        started = time.monotonic()
        result = dbtRunner().invoke(
            [*args, "--project-dir", str(self.project_dir), "--profiles-dir", str(PROFILES_DIR), "--quiet"]
        )
        print(f"dbt {args[0]}: {'ok' if result.success else 'failed'} in {time.monotonic() - started:.1f}s")
        return result.success

    def build_blue(self, release_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Blue prepared from green for the release, then built, as the release job does."""
        assert self.clone_green_to_blue(release_id, monkeypatch), f"preparing blue for release {release_id} failed"
        ok = self.dbt("run", "--vars", json.dumps({"release_id": release_id}), monkeypatch=monkeypatch)
        assert ok, f"dbt run of release {release_id} into blue failed"

    def promote(self, release_id: str, monkeypatch: pytest.MonkeyPatch) -> bool:
        built_by = {t: {"model": t, "run_id": f"run-{release_id}"} for t in RELEASE_TABLES}
        args = {"release_id": release_id, "tables": RELEASE_TABLES, "built_by": built_by}
        return self.dbt("run-operation", "promote_blue_to_green", "--args", json.dumps(args), monkeypatch=monkeypatch)

    def clone_green_to_blue(self, release_id: str, monkeypatch: pytest.MonkeyPatch) -> bool:
        args = {"release_id": release_id, "tables": RELEASE_TABLES}
        return self.dbt("run-operation", "clone_green_to_blue", "--args", json.dumps(args), monkeypatch=monkeypatch)


def copy_release_project(target: Path) -> Path:
    """A copy of release_project/ (dbt writes its packages, target and logs next to it)."""
    project_dir = target / "release_project"
    shutil.copytree(RELEASE_PROJECT_DIR, project_dir)
    return project_dir


def connect(connect_kwargs: dict[str, Any], database: str) -> snowflake.connector.SnowflakeConnection:
    """A Snowflake connector session on the stand-in, to set up and inspect state as a test."""
    return snowflake.connector.connect(**connect_kwargs, database=database)
