"""The Snowflake blue/green promotion, run for real against the Snowflake stand-in
(tests/snowflake/: fakesnow plus the clone, swap and transient semantics the release needs).

Unit tests pin the stand-in's added statements; the release tests run the package's
`promote_blue_to_green` through dbt-snowflake over HTTP, including a crash after every statement
of a promotion followed by a replay."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fakesnow
import pytest
import snowflake.connector
import snowflake.connector.errors

from tests.snowflake.harness import (
    RELEASE_TABLES,
    ReleaseProject,
    connect,
    copy_release_project,
    standin_server,
)
from tests.snowflake.standin import TRANSIENT_TO_PERMANENT_MESSAGE, SnowflakeStandIn

pytestmark = [
    # fakesnow's and the connector's own notices, once per statement.
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
    pytest.mark.filterwarnings("ignore:The 'insecure_mode' connection property:DeprecationWarning"),
]

CONSUMER_TABLE = "consumer_notes"
# Release ids are run ids (the macros refuse anything else), in this order.
R1, R2, R3 = (f"00000000-0000-4000-8000-00000000000{n}" for n in (1, 2, 3))
_databases = itertools.count()


# ---- the stand-in's added statements, in-process ------------------------------------------------


@pytest.fixture
def standin() -> Iterator[tuple[SnowflakeStandIn, Any]]:
    """A fresh in-process fakesnow with the stand-in installed, and a cursor on database DB."""
    standin = SnowflakeStandIn()
    with standin.install(), fakesnow.patch():
        conn = snowflake.connector.connect(database="DB", schema="PUBLIC")
        cursor = conn.cursor()
        cursor.execute("create schema blue")
        cursor.execute("create schema green")
        yield standin, cursor
        conn.close()


def rows(cursor: Any, sql: str) -> list[tuple]:
    cursor.execute(sql)
    return sorted(cursor.fetchall())


def test_table_clone_copies_rows_and_leaves_source(standin: tuple[SnowflakeStandIn, Any]) -> None:
    _, cur = standin
    cur.execute("create table blue.t (n int)")
    cur.execute("insert into blue.t values (1), (2)")
    cur.execute("create or replace table green.t clone blue.t")
    cur.execute("insert into blue.t values (3)")
    assert rows(cur, "select n from green.t") == [(1,), (2,)]
    assert rows(cur, "select n from blue.t") == [(1,), (2,), (3,)]


def test_transient_table_clone_to_permanent_refused_with_snowflakes_message(
    standin: tuple[SnowflakeStandIn, Any],
) -> None:
    s, cur = standin
    # What dbt-snowflake runs for a table model by default.
    cur.execute("create or replace transient table blue.t as (select 1 as n)")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match=TRANSIENT_TO_PERMANENT_MESSAGE):
        cur.execute("create or replace table green.t clone blue.t")
    assert rows(cur, "select table_name from information_schema.tables where table_schema = 'GREEN'") == []
    cur.execute("create or replace transient table green.t clone blue.t")
    assert ("DB", "GREEN", "T") in s.transient_tables
    # A permanent table may be cloned as transient, and then refuses a permanent clone in turn.
    cur.execute("create table blue.p (n int)")
    cur.execute("create transient table green.p clone blue.p")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match=TRANSIENT_TO_PERMANENT_MESSAGE):
        cur.execute("create table blue.p2 clone green.p")


def test_schema_clone_copies_tables_keeping_them_transient(standin: tuple[SnowflakeStandIn, Any]) -> None:
    s, cur = standin
    cur.execute("create transient table green.t as (select 'r1' as release_id)")
    cur.execute("create table green.log (release_id varchar)")
    cur.execute("create schema green_next")
    cur.execute("create table green_next.stale (n int)")
    cur.execute("create or replace schema green_next clone green")
    cur.execute("insert into green.log values ('r1')")
    tables = "select table_name from information_schema.tables where table_schema = 'GREEN_NEXT'"
    assert rows(cur, tables) == [("LOG",), ("T",)]
    assert rows(cur, "select release_id from green_next.t") == [("r1",)]
    assert rows(cur, "select release_id from green_next.log") == []
    assert ("DB", "GREEN_NEXT", "T") in s.transient_tables
    assert ("DB", "GREEN_NEXT", "LOG") not in s.transient_tables
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="already exists"):
        cur.execute("create schema green_next clone green")


def test_table_swap_across_schemas_exchanges_same_named_tables(standin: tuple[SnowflakeStandIn, Any]) -> None:
    s, cur = standin
    cur.execute("create transient table blue.t as (select 'new' as release_id)")
    cur.execute("create table green.t as (select 'old' as release_id, 1 as extra)")
    cur.execute("alter table blue.t swap with green.t")
    assert rows(cur, "select * from green.t") == [("new",)]
    assert rows(cur, "select * from blue.t") == [("old", 1)]
    assert ("DB", "GREEN", "T") in s.transient_tables
    assert ("DB", "BLUE", "T") not in s.transient_tables


def test_table_swap_with_missing_table_fails_and_changes_nothing(standin: tuple[SnowflakeStandIn, Any]) -> None:
    _, cur = standin
    cur.execute("create table blue.t as (select 1 as n)")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="does not exist"):
        cur.execute("alter table blue.t swap with green.t")
    assert rows(cur, "select n from blue.t") == [(1,)]


def test_schema_swap_exchanges_every_table(standin: tuple[SnowflakeStandIn, Any]) -> None:
    s, cur = standin
    cur.execute("create transient table blue.a as (select 'blue' as side)")
    cur.execute("create table blue.only_blue (n int)")
    cur.execute("create table green.a as (select 'green' as side)")
    cur.execute("alter schema blue swap with green")
    assert rows(cur, "select side from green.a") == [("blue",)]
    assert rows(cur, "select side from blue.a") == [("green",)]
    tables = "select table_schema, table_name from information_schema.tables where table_schema in ('BLUE', 'GREEN')"
    assert rows(cur, tables) == [("BLUE", "A"), ("GREEN", "A"), ("GREEN", "ONLY_BLUE")]
    assert ("DB", "GREEN", "A") in s.transient_tables
    assert ("DB", "BLUE", "A") not in s.transient_tables


def test_ddl_commits_the_open_transaction_on_its_own(standin: tuple[SnowflakeStandIn, Any]) -> None:
    _, cur = standin
    conn = snowflake.connector.connect(database="DB", schema="PUBLIC", autocommit=False)
    manual = conn.cursor()
    manual.execute("create table blue.t (n int)")
    manual.execute("create table green.t (n int)")
    manual.execute("insert into blue.t values (1)")
    manual.execute("alter table blue.t swap with green.t")
    conn.rollback()
    assert rows(manual, "select n from green.t") == [(1,)], "the swap did not commit the insert before it"
    conn.close()


def test_injected_crash_fails_every_statement_after_the_nth(standin: tuple[SnowflakeStandIn, Any]) -> None:
    s, cur = standin
    s.arm_crash(after=1)
    cur.execute("create table green.t (n int)")
    with pytest.raises(snowflake.connector.errors.OperationalError, match="injected crash"):
        cur.execute("insert into green.t values (1)")
    s.disarm()
    assert rows(cur, "select n from green.t") == []


# ---- the promotion, through dbt-snowflake over the stand-in's HTTP server ------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SnowflakeStandIn, dict[str, Any]]]:
    with standin_server() as served:
        yield served


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory, server: tuple[SnowflakeStandIn, dict]) -> Path:
    project_dir = copy_release_project(tmp_path_factory.mktemp("snowflake"))
    project = ReleaseProject(project_dir, server[1], "SETUP")
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert project.dbt("deps", monkeypatch=monkeypatch), "dbt deps of the test project failed"
    return project_dir


@pytest.fixture
def release(
    server: tuple[SnowflakeStandIn, dict[str, Any]], project_dir: Path
) -> Iterator[tuple[SnowflakeStandIn, ReleaseProject, Any]]:
    """The project on a fresh database, with green holding a consumer's own table."""
    standin, connect_kwargs = server
    database = f"RELEASE_{next(_databases)}"
    conn = connect(connect_kwargs, database)
    cursor = conn.cursor()
    cursor.execute(f"create database if not exists {database}")
    cursor.execute(f"create schema {database}.green")
    cursor.execute(f"create table {database}.green.{CONSUMER_TABLE} as (select 'kept' as note)")
    standin.disarm()
    yield standin, ReleaseProject(project_dir, connect_kwargs, database), cursor
    standin.disarm()
    conn.close()


def green_state(cursor: Any, database: str) -> tuple[set[str], list[str], list[str]]:
    """The release ids in green's release tables, green's log (sorted) and green's tables."""
    in_tables = set()
    for table in RELEASE_TABLES:
        cursor.execute(f"select distinct release_id from {database}.green.{table}")
        in_tables |= {r[0] for r in cursor.fetchall()}
    cursor.execute(f"select release_id from {database}.green._release_log order by release_id")
    log = [r[0] for r in cursor.fetchall()]
    cursor.execute(
        f"select table_name from {database}.information_schema.tables where table_schema = 'GREEN' order by 1"
    )
    return in_tables, log, [r[0] for r in cursor.fetchall()]


def schemas(cursor: Any, database: str) -> set[str]:
    cursor.execute(f"select schema_name from {database}.information_schema.schemata")
    return {r[0] for r in cursor.fetchall()}


def assert_green_is(cursor: Any, database: str, release_id: str, log: list[str]) -> None:
    in_tables, logged, tables = green_state(cursor, database)
    assert in_tables == {release_id}, f"green mixes or lacks releases: {in_tables}, expected only {release_id}"
    assert logged == log, f"green._release_log is {logged}, expected {log} (each release once)"
    assert tables == sorted([*(t.upper() for t in RELEASE_TABLES), "_RELEASE_LOG", CONSUMER_TABLE.upper()])


def test_first_and_second_promotion_publish_one_release_logged_once(
    release: tuple[SnowflakeStandIn, ReleaseProject, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    standin, project, cur = release
    db = project.database
    project.build_blue(R1, monkeypatch)
    assert all((db, "BLUE", t.upper()) in standin.transient_tables for t in RELEASE_TABLES)
    assert project.promote(R1, monkeypatch), "first promotion failed (transient -> permanent clone?)"
    assert_green_is(cur, db, R1, [R1])
    assert all((db, "GREEN", t.upper()) in standin.transient_tables for t in RELEASE_TABLES)

    project.build_blue(R2, monkeypatch)
    assert project.promote(R2, monkeypatch)
    assert_green_is(cur, db, R2, [R1, R2])
    assert "GREEN_NEXT" not in schemas(cur, db)
    cur.execute(f"select min(year(promoted_at)), max(built_by:orders:run_id::varchar) from {db}.green._release_log")
    assert cur.fetchone() == (datetime.now(UTC).year, f"run-{R2}")

    standin.statements.clear()
    assert project.promote(R2, monkeypatch), "replay of an already-promoted release failed"
    assert_green_is(cur, db, R2, [R1, R2])
    assert not any("swap" in s or "clone" in s for s in standin.statements), standin.statements


def test_missing_blue_table_refused_green_unchanged(
    release: tuple[SnowflakeStandIn, ReleaseProject, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, project, cur = release
    project.build_blue(R1, monkeypatch)
    assert project.promote(R1, monkeypatch)
    assert project.clone_green_to_blue(R2, monkeypatch)
    cur.execute(f"drop table {project.database}.blue.orders")
    assert not project.promote(R2, monkeypatch)
    assert_green_is(cur, project.database, R1, [R1])


def test_a_release_id_with_a_quote_is_refused_with_nothing_run(
    release: tuple[SnowflakeStandIn, ReleaseProject, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    standin, project, cur = release
    project.build_blue(R1, monkeypatch)
    assert project.promote(R1, monkeypatch)
    standin.statements.clear()
    assert not project.clone_green_to_blue("x'; drop schema green; --", monkeypatch)
    assert not project.promote("x'; drop schema green; --", monkeypatch)
    assert not any("green" in statement.lower() for statement in standin.statements), standin.statements
    assert_green_is(cur, project.database, R1, [R1])


def test_promotion_of_a_blue_prepared_for_another_release_refused_green_unchanged(
    release: tuple[SnowflakeStandIn, ReleaseProject, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on PostgreSQL: a release whose blue was never prepared (a promotion launched on its own,
    or blue reused by a later release) would publish another release's tables."""
    standin, project, cur = release
    project.build_blue(R1, monkeypatch)
    assert project.promote(R1, monkeypatch)
    project.build_blue(R2, monkeypatch)
    standin.statements.clear()
    assert not project.promote(R3, monkeypatch)
    assert not any("swap" in s or "clone" in s for s in standin.statements), standin.statements
    assert_green_is(cur, project.database, R1, [R1])


@pytest.mark.parametrize("previous", [None, R1], ids=["first_promotion", "second_promotion"])
def test_crash_after_each_statement_then_replay_leaves_one_release(
    release: tuple[SnowflakeStandIn, ReleaseProject, Any], monkeypatch: pytest.MonkeyPatch, previous: str | None
) -> None:
    standin, project, cur = release
    db = project.database
    if previous:
        project.build_blue(previous, monkeypatch)
        assert project.promote(previous, monkeypatch)
    project.build_blue(R2, monkeypatch)
    # Saved states to restart each crash from (schema clones, through the stand-in itself).
    cur.execute(f"create schema {db}.saved_green clone {db}.green")
    cur.execute(f"create schema {db}.saved_blue clone {db}.blue")
    logged = [previous] if previous else []

    standin.statements.clear()
    assert project.promote(R2, monkeypatch)
    statements = list(standin.statements)
    assert any("swap with" in s for s in statements), statements
    assert_green_is(cur, db, R2, [*logged, R2])

    for crash_after in range(1, len(statements) + 1):
        cur.execute(f"create or replace schema {db}.green clone {db}.saved_green")
        cur.execute(f"create or replace schema {db}.blue clone {db}.saved_blue")
        cur.execute(f"drop schema if exists {db}.green_next")
        standin.arm_crash(after=crash_after)
        crashed = not project.promote(R2, monkeypatch)
        standin.disarm()
        assert crashed == (crash_after < len(statements)), f"crash after statement {crash_after} not injected"
        if previous:
            # Before its swap the promotion leaves green whole on the previous release; after, on r2.
            in_tables, log, _ = green_state(cur, db)
            assert (in_tables, log) in [({previous}, logged), ({R2}, [*logged, R2])], (
                f"after a crash after statement {crash_after} ({statements[crash_after - 1]!r}), "
                f"green holds {in_tables} with log {log}"
            )
        assert project.promote(R2, monkeypatch), f"replay after a crash after statement {crash_after} failed"
        assert_green_is(cur, db, R2, [*logged, R2])
        assert "GREEN_NEXT" not in schemas(cur, db)
