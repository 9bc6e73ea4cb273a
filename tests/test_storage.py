"""The instance's PostgreSQL storage (dagster_code/storage.py) on a real PostgreSQL: the event log
writes on one kept connection, and a kept connection PostgreSQL dropped is replaced, not failed."""

from __future__ import annotations

import dagster as dg
import psycopg
from sqlalchemy import event

from dagster_code.storage import PooledPostgresStorage

EVENTS = 50


def report_events(instance: dg.DagsterInstance, run: dg.DagsterRun, count: int) -> None:
    for index in range(count):
        instance.report_engine_event(f"event {index}", dagster_run=run)


def connections_opened(instance: dg.DagsterInstance) -> list[int]:
    """A counter of the event log engine's new connections, from now on."""
    opened = [0]

    def count(*_: object) -> None:
        opened[0] += 1

    event.listen(instance.event_log_storage._engine, "connect", count)  # noqa: SLF001
    return opened


def test_event_log_writes_reuse_one_connection(instance):
    assert isinstance(instance.get_ref().storage_data.rehydrate(as_type=PooledPostgresStorage), PooledPostgresStorage)
    run = instance.create_run_for_job(dg.GraphDefinition(name="noop").to_job())
    opened = connections_opened(instance)

    report_events(instance, run, EVENTS)

    assert len(instance.all_logs(run.run_id)) == EVENTS
    # Dagster's NullPool would have opened one per event.
    assert opened[0] <= 1


def test_a_dropped_connection_is_replaced(instance, pg):
    run = instance.create_run_for_job(dg.GraphDefinition(name="noop").to_job())
    report_events(instance, run, 1)
    opened = connections_opened(instance)
    database = instance.event_log_storage._engine.url.database  # noqa: SLF001
    with psycopg.connect(pg.conninfo(), autocommit=True) as admin:
        dropped = admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    assert dropped, "no kept connection to drop"

    report_events(instance, run, 1)

    assert len(instance.all_logs(run.run_id)) == 2
    assert opened[0] == 1
