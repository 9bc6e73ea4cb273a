"""Daily partitions of the app-event models: each run touches only its own day."""

import psycopg
import pytest

from tests.support import load_raw, query, run_job

DAY = "2024-01-03"
OTHER_DAY = "2024-01-05"


def _mark_one_event_per_day(conninfo: str, days: list[str]) -> dict[str, int]:
    """Changes the type of the first event of each day; returns the changed event ids."""
    changed = {}
    with psycopg.connect(conninfo) as conn:
        for day in days:
            (event_id,) = conn.execute(
                "select min(event_id) from raw.app_events where event_time::date = %s", (day,)
            ).fetchone()
            conn.execute("update raw.app_events set event_type = 'changed' where event_id = %s", (event_id,))
            changed[day] = event_id
    return changed


def _event_type(conninfo: str, table: str, event_id: int) -> str:
    return query(conninfo, f"select event_type from events.{table} where event_id = %s", (event_id,))[0][0]


def test_incremental_partition_only_touches_its_window(defs, warehouse, instance):
    load_raw(warehouse)
    # The first run builds the whole table (is_incremental() is false); later runs filter.
    assert run_job(defs, "app_events_incremental_job", instance, partition_key=DAY).success
    before = query(warehouse, "select count(*) from events.fct_app_events")[0][0]
    changed = _mark_one_event_per_day(warehouse, [DAY, OTHER_DAY])

    result = run_job(defs, "app_events_incremental_job", instance, partition_key=DAY)

    assert result.success
    assert _event_type(warehouse, "fct_app_events", changed[DAY]) == "changed"
    assert _event_type(warehouse, "fct_app_events", changed[OTHER_DAY]) != "changed"
    assert query(warehouse, "select count(*) from events.fct_app_events")[0][0] == before


def test_microbatch_partition_processes_only_its_day(defs, warehouse, instance):
    load_raw(warehouse)

    first = run_job(defs, "app_events_microbatch_job", instance, partition_key=DAY)

    assert first.success
    days = query(warehouse, "select distinct event_time::date::text from events.fct_app_events_microbatch")
    assert days == [(DAY,)]
    changed = _mark_one_event_per_day(warehouse, [DAY, OTHER_DAY])

    second = run_job(defs, "app_events_microbatch_job", instance, partition_key=OTHER_DAY)

    assert second.success
    days = query(
        warehouse,
        "select distinct event_time::date::text from events.fct_app_events_microbatch order by 1",
    )
    assert days == [(DAY,), (OTHER_DAY,)]
    assert _event_type(warehouse, "fct_app_events_microbatch", changed[OTHER_DAY]) == "changed"
    assert _event_type(warehouse, "fct_app_events_microbatch", changed[DAY]) != "changed"


def test_wrong_partition_key_refused_with_its_name(defs, warehouse, instance):
    with pytest.raises(Exception, match="2023-12-31"):
        defs.resolve_job_def("app_events_microbatch_job").execute_in_process(
            instance=instance, partition_key="2023-12-31"
        )
