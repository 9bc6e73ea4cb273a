"""Dagster's PostgreSQL storage, keeping one connection of the event log open per process.

dagster-postgres opens a new connection for every storage call outside the webserver
(SQLAlchemy's NullPool), so that a process holds none between calls. A run worker writes several
event records per dbt node it streams, and reads some back, each call on a connection of its own:
measured on a release of 500 generated models (the benchmark's case 6), 6,784 connections, 87 s
of a 196 s run spent opening them, and as many PostgreSQL backends forked on the same cores.
Here the event log keeps one connection per process (more open while calls overlap, closed
after), checked with a ping before each use, so that a connection PostgreSQL dropped (a restart,
a failover) is replaced rather than failing the call. The run and schedule storages, called far less, keep Dagster's
behavior. A process then holds one idle connection: size PostgreSQL's max_connections for the
webserver's pool, the daemon and code servers, and one per run in progress.
"""

from __future__ import annotations

from typing import Any

from dagster._core.storage.config import PostgresStorageConfig
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

# Connections kept open between calls; calls that overlap open more (no limit), closed after use.
KEPT_CONNECTIONS = 1
# A kept connection older than this is replaced (proxies and firewalls drop idle connections).
RECYCLE_SECONDS = 600


class PooledPostgresStorage(DagsterPostgresStorage):
    """`storage: postgres:` with the event log's connection kept open; the same config."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, **kwargs: Any) -> None:
        super().__init__(postgres_url, should_autocreate_tables, **kwargs)
        event_log = self._event_log_storage
        event_log._engine = create_pg_engine(  # noqa: SLF001 - dagster-postgres offers no pool option
            postgres_url,
            kwargs.get("token_provider"),
            isolation_level="AUTOCOMMIT",
            pool_size=KEPT_CONNECTIONS,
            max_overflow=-1,
            pool_pre_ping=True,
            pool_recycle=RECYCLE_SECONDS,
        )

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: PostgresStorageConfig
    ) -> PooledPostgresStorage:
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )
