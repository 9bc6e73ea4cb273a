"""A Snowflake stand-in for the blue/green release: fakesnow (DuckDB underneath) plus the
Snowflake semantics the promotion depends on and fakesnow lacks (see README.md in this folder).

No machine here can reach Snowflake, so this models, from Snowflake's documentation, only what
the release macros rely on: zero-copy clones (as copies), table and schema swaps, the
transient/permanent rule of clones, DDL committing on its own. It intercepts statements on
fakesnow's cursor, which serves both the in-process connector and fakesnow's HTTP server (the
one dbt-snowflake talks to), and can inject a crash after the N-th statement.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import fakesnow.info_schema
import fakesnow.server
import fakesnow.transforms
import snowflake.connector.errors
import sqlglot
from fakesnow.conn import FakeSnowflakeConnection
from fakesnow.cursor import FakeSnowflakeCursor
from sqlglot import exp
from sqlglot.errors import ParseError

TRANSIENT_TO_PERMANENT_MESSAGE = "Transient object cannot be cloned to a permanent object."
INJECTED_CRASH_MESSAGE = "Stand-in: injected crash, the client lost its connection before this statement."

_NAME = r'(?:"[^"]+"|[A-Za-z_][\w$]*)(?:\.(?:"[^"]+"|[A-Za-z_][\w$]*)){0,2}'
_REPLACE = r"(?P<replace>or\s+replace\s+)?"
_TRANSIENT = r"(?P<transient>transient\s+)?"
_IF_NOT_EXISTS = r"(?P<if_not_exists>if\s+not\s+exists\s+)?"
CLONE_TABLE = re.compile(
    rf"create\s+{_REPLACE}{_TRANSIENT}table\s+{_IF_NOT_EXISTS}(?P<target>{_NAME})\s+clone\s+(?P<source>{_NAME})",
    re.IGNORECASE,
)
CLONE_SCHEMA = re.compile(
    rf"create\s+{_REPLACE}{_TRANSIENT}schema\s+{_IF_NOT_EXISTS}(?P<target>{_NAME})\s+clone\s+(?P<source>{_NAME})",
    re.IGNORECASE,
)
SWAP_TABLE = re.compile(rf"alter\s+table\s+(?:if\s+exists\s+)?(?P<a>{_NAME})\s+swap\s+with\s+(?P<b>{_NAME})", re.I)
SWAP_SCHEMA = re.compile(rf"alter\s+schema\s+(?:if\s+exists\s+)?(?P<a>{_NAME})\s+swap\s+with\s+(?P<b>{_NAME})", re.I)
CREATE_TABLE = re.compile(rf"create\s+{_REPLACE}{_TRANSIENT}table\s+{_IF_NOT_EXISTS}(?P<target>{_NAME})", re.I)
CREATE_SCHEMA = re.compile(rf"create\s+{_REPLACE}{_TRANSIENT}schema\s+{_IF_NOT_EXISTS}(?P<target>{_NAME})\s*$", re.I)
DROP_TABLE = re.compile(rf"drop\s+table\s+(?:if\s+exists\s+)?(?P<target>{_NAME})", re.IGNORECASE)
DROP_SCHEMA = re.compile(rf"drop\s+schema\s+(?:if\s+exists\s+)?(?P<target>{_NAME})", re.IGNORECASE)
# Snowflake lets a temporary table or view carry a database and schema (dbt-snowflake names the
# `__dbt_tmp` relations of incremental, microbatch and snapshot builds that way); DuckDB keeps
# temporary objects in its own catalog only.
CREATE_TEMPORARY = re.compile(
    rf"create\s+{_REPLACE}(?:local\s+|global\s+)?(?:temporary|temp)\s+(?P<kind>table|view)\s+{_IF_NOT_EXISTS}(?P<target>{_NAME})",
    re.IGNORECASE,
)
MERGE = re.compile(r"merge\s+into\b", re.IGNORECASE)
LEADING_COMMENTS = re.compile(r"^(?:\s|/\*.*?\*/|--[^\n]*\n)*", re.DOTALL)
TRAILING_COMMENTS = re.compile(r"(?:\s|;|/\*(?:(?!\*/).)*\*/|--[^\n]*)*$", re.DOTALL)

_swap_names = itertools.count()


def normalise(sql: str) -> str:
    """The statement without the comments around it (dbt adds one), a trailing `;` or blanks."""
    return TRAILING_COMMENTS.sub("", LEADING_COMMENTS.sub("", sql, count=1), count=1)


def _ident(part: str) -> str:
    return part[1:-1] if part.startswith('"') else part.upper()


def _parts(name: str) -> list[str]:
    """The parts of a dotted name as written (a quoted part may hold dots)."""
    return re.findall(r'"[^"]+"|[^.]+', name)


def _qualify_merge_insert_values(statement: str) -> str:
    """A MERGE whose `when not matched ... insert (...) values (...)` names source columns bare.

    Snowflake reads those names from the source row (there is no target row); fakesnow joins target
    and source first, where a column both have is ambiguous (dbt's snapshot merge names them all)."""
    merge = sqlglot.parse_one(statement, read="snowflake")
    source = merge.args["using"].alias_or_name
    for when in merge.find_all(exp.When):
        if when.args.get("matched") is False and isinstance(insert := when.args.get("then"), exp.Insert):
            for column in insert.expression.find_all(exp.Column):
                if not column.table:
                    column.set("table", exp.to_identifier(source))
    return merge.sql(dialect="snowflake")


def _quote(*parts: str) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _status(original: Callable[..., FakeSnowflakeCursor], cursor: FakeSnowflakeCursor, message: str) -> None:
    """Leaves on the cursor the one-row status Snowflake answers a DDL statement with."""
    original(cursor, "select '" + message.replace("'", "''") + "' as status")


def _error(message: str, errno: int = 2003, sqlstate: str = "02000") -> snowflake.connector.errors.ProgrammingError:
    return snowflake.connector.errors.ProgrammingError(msg=message, errno=errno, sqlstate=sqlstate)


@dataclass
class SnowflakeStandIn:
    """The added semantics and the bookkeeping DuckDB has no place for (which objects are transient).

    `install()` patches fakesnow's cursor for the duration of a `with` block. Installs nest: the
    innermost stand-in serves every fakesnow connection of the process until its block ends.
    """

    transient_tables: set[tuple[str, str, str]] = field(default_factory=set)
    transient_schemas: set[tuple[str, str]] = field(default_factory=set)
    statements: list[str] = field(default_factory=list)
    crash_after: int | None = None
    # Per session: its temporary tables and views, kept as ordinary ones until the session ends.
    temporary_objects: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, str], str]] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ---- test controls -------------------------------------------------------------------------

    def arm_crash(self, after: int) -> None:
        """Fail every statement after the next `after` ones, as if the client died there."""
        with self._lock:
            self.statements.clear()
            self.crash_after = after

    def disarm(self) -> None:
        with self._lock:
            self.crash_after = None

    @contextmanager
    def install(self) -> Iterator[SnowflakeStandIn]:
        original_execute = FakeSnowflakeCursor.execute
        original_close = FakeSnowflakeConnection.close
        original_comment_sql = fakesnow.info_schema.insert_table_comment_sql
        original_agg_cast = fakesnow.transforms.numeric_agg_implicit_cast
        original_parse_one = fakesnow.server.parse_one
        standin = self

        def execute(cursor: FakeSnowflakeCursor, command: str, *args: Any, **kwargs: Any) -> FakeSnowflakeCursor:
            return standin.execute(original_execute, cursor, command, *args, **kwargs)

        def close(conn: FakeSnowflakeConnection, *args: Any, **kwargs: Any) -> None:
            if not conn._is_closed:  # noqa: SLF001
                standin._drop_session_objects(conn)  # noqa: SLF001
            original_close(conn, *args, **kwargs)

        def comment_sql(catalog: str, schema: str, table: str, comment: str | None) -> str:
            # fakesnow records "no comment" (as the text 'None') in a database of its own for every
            # created table, also the one its MERGE makes; DuckDB refuses that write in a
            # transaction that wrote elsewhere, which fails dbt's snapshot merge (run in one).
            return original_comment_sql(catalog, schema, table, comment) if comment is not None else "select 1"

        def agg_cast(expression: exp.Expr) -> exp.Expr:
            # fakesnow sums as DOUBLE (so that text sums like Snowflake's); Snowflake sums
            # NUMBER(p, s) exactly, and dbt tests compare money totals with `<>`.
            exact = isinstance(expression, exp.Sum) and not isinstance(expression.this, (exp.Cast, exp.TryCast))
            argument = expression.this
            result = original_agg_cast(expression)
            if exact:
                (result.this if isinstance(result, exp.Alias) else result).set("this", argument)
            return result

        def parse_one(sql: str, *args: Any, **kwargs: Any) -> Any:
            # fakesnow's server parses each statement before executing it: give the statements
            # sqlglot cannot parse (schema clone and swap) a stand-in expression of the same kind.
            try:
                return original_parse_one(sql, *args, **kwargs)
            except ParseError:
                if standin.handles(sql):
                    return original_parse_one("alter table x rename to y", *args, **kwargs)
                raise

        FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]
        FakeSnowflakeConnection.close = close  # type: ignore[method-assign]
        fakesnow.info_schema.insert_table_comment_sql = comment_sql
        fakesnow.transforms.numeric_agg_implicit_cast = agg_cast
        fakesnow.server.parse_one = parse_one
        try:
            yield self
        finally:
            FakeSnowflakeCursor.execute = original_execute  # type: ignore[method-assign]
            FakeSnowflakeConnection.close = original_close  # type: ignore[method-assign]
            fakesnow.info_schema.insert_table_comment_sql = original_comment_sql
            fakesnow.transforms.numeric_agg_implicit_cast = original_agg_cast
            fakesnow.server.parse_one = original_parse_one

    # ---- statement dispatch --------------------------------------------------------------------

    def handles(self, sql: str) -> bool:
        statement = normalise(sql)
        return any(p.fullmatch(statement) for p in (CLONE_TABLE, CLONE_SCHEMA, SWAP_TABLE, SWAP_SCHEMA))

    def execute(
        self,
        original: Callable[..., FakeSnowflakeCursor],
        cursor: FakeSnowflakeCursor,
        command: str,
        *args: Any,
        **kwargs: Any,
    ) -> FakeSnowflakeCursor:
        statement = normalise(command)
        with self._lock:
            if self.crash_after is not None and len(self.statements) >= self.crash_after:
                raise snowflake.connector.errors.OperationalError(msg=INJECTED_CRASH_MESSAGE, errno=250001)
            if m := CLONE_TABLE.fullmatch(statement):
                self._clone_table(cursor, m)
                _status(original, cursor, f"Table {_ident(m['target'].split('.')[-1])} successfully created.")
            elif m := CLONE_SCHEMA.fullmatch(statement):
                self._clone_schema(cursor, m)
                _status(original, cursor, f"Schema {_ident(m['target'].split('.')[-1])} successfully created.")
            elif m := SWAP_TABLE.fullmatch(statement):
                self._swap_tables(cursor, self._table(cursor, m["a"]), self._table(cursor, m["b"]))
                _status(original, cursor, "Statement executed successfully.")
            elif m := SWAP_SCHEMA.fullmatch(statement):
                self._swap_schemas(cursor, self._schema(cursor, m["a"]), self._schema(cursor, m["b"]))
                _status(original, cursor, "Statement executed successfully.")
            else:
                if (rewritten := self._rewrite(cursor, statement)) != statement:
                    command = rewritten
                created = self._newly_created_table(cursor, statement)
                try:
                    original(cursor, command, *args, **kwargs)
                except Exception:
                    self._roll_back_failed_statement(cursor)
                    raise
                self._track(cursor, statement, created)
            self.statements.append(statement)
            return cursor

    # ---- names ---------------------------------------------------------------------------------

    def _table(self, cursor: FakeSnowflakeCursor, name: str) -> tuple[str, str, str]:
        parts = [_ident(p) for p in _parts(name)]
        defaults = [cursor._conn.database or "", cursor._conn.schema or ""]  # noqa: SLF001
        db, schema, table = ([*defaults[: 3 - len(parts)], *parts])[-3:]
        return db, schema, table

    def _roll_back_failed_statement(self, cursor: FakeSnowflakeCursor) -> None:
        """Snowflake rolls back a failed statement alone and the session goes on; DuckDB aborts the
        whole transaction and refuses every later statement. Roll the transaction back (an open
        explicit one too, where Snowflake would keep it: see README.md)."""
        with contextlib.suppress(duckdb.Error):  # when no transaction was open
            cursor._duck_conn.rollback()  # noqa: SLF001
        cursor._conn._in_transaction = False  # noqa: SLF001

    def _rewrite(self, cursor: FakeSnowflakeCursor, statement: str) -> str:
        if MERGE.match(statement):
            return _qualify_merge_insert_values(statement)
        return self._session_table_for_temporary(cursor, statement)

    def _session_table_for_temporary(self, cursor: FakeSnowflakeCursor, statement: str) -> str:
        """`statement`, a temporary table or view made an ordinary one of its schema, recorded as
        the session's; `_drop_session_objects` drops it when the session ends."""
        if not (m := CREATE_TEMPORARY.match(statement)):
            return statement
        kind = m["kind"].lower()
        self.temporary_objects.setdefault(cursor._conn, {})[self._table(cursor, m["target"])] = kind  # noqa: SLF001
        replace = "or replace " if m["replace"] else ""
        if_not_exists = "if not exists " if m["if_not_exists"] else ""
        return f"create {replace}{kind} {if_not_exists}{statement[m.start('target') :]}"

    def _drop_session_objects(self, conn: Any) -> None:
        for (db, schema, name), kind in self.temporary_objects.pop(conn, {}).items():
            conn._duck_conn.execute(f"drop {kind} if exists {_quote(db, schema, name)}")  # noqa: SLF001

    def _schema(self, cursor: FakeSnowflakeCursor, name: str) -> tuple[str, str]:
        parts = [_ident(p) for p in _parts(name)]
        db = parts[0] if len(parts) == 2 else cursor._conn.database or ""  # noqa: SLF001
        return db, parts[-1]

    def _tables_in(self, cursor: FakeSnowflakeCursor, db: str, schema: str, kind: str = "BASE TABLE") -> list[str]:
        rows = cursor._duck_conn.execute(  # noqa: SLF001
            "select table_name from information_schema.tables"
            " where table_catalog = ? and table_schema = ? and table_type = ? order by table_name",
            [db, schema, kind],
        ).fetchall()
        return [r[0] for r in rows]

    def _schema_exists(self, cursor: FakeSnowflakeCursor, db: str, schema: str) -> bool:
        return bool(
            cursor._duck_conn.execute(  # noqa: SLF001
                "select count(*) from information_schema.schemata where catalog_name = ? and schema_name = ?",
                [db, schema],
            ).fetchone()[0]
        )

    def _require_table(self, cursor: FakeSnowflakeCursor, table: tuple[str, str, str]) -> None:
        if table[2] not in self._tables_in(cursor, table[0], table[1]):
            raise _error(f"Object '{'.'.join(table)}' does not exist or not authorized.")

    def _require_schema(self, cursor: FakeSnowflakeCursor, schema: tuple[str, str]) -> None:
        if not self._schema_exists(cursor, *schema):
            raise _error(f"Schema '{'.'.join(schema)}' does not exist or not authorized.")

    def _is_transient(self, table: tuple[str, str, str]) -> bool:
        return table in self.transient_tables or table[:2] in self.transient_schemas

    # ---- transactions: each added statement commits on its own, all or nothing ------------------

    @contextmanager
    def _ddl_transaction(self, cursor: FakeSnowflakeCursor) -> Iterator[Callable[[str], None]]:
        duck = cursor._duck_conn  # noqa: SLF001
        conn = cursor._conn  # noqa: SLF001
        if conn._in_transaction:  # noqa: SLF001
            # Snowflake commits an open transaction before it runs a DDL statement.
            duck.commit()
            conn._in_transaction = False  # noqa: SLF001
        duck.execute("begin transaction")
        try:
            yield lambda sql: duck.execute(sql)
        except BaseException:
            duck.rollback()
            raise
        duck.commit()

    # ---- the added statements ------------------------------------------------------------------

    def _clone_table(self, cursor: FakeSnowflakeCursor, m: re.Match[str]) -> None:
        target, source = self._table(cursor, m["target"]), self._table(cursor, m["source"])
        self._require_table(cursor, source)
        target_transient = bool(m["transient"]) or target[:2] in self.transient_schemas
        if self._is_transient(source) and not target_transient:
            raise _error(TRANSIENT_TO_PERMANENT_MESSAGE, errno=2203, sqlstate="0A000")
        if target[2] in self._tables_in(cursor, *target[:2]):
            if m["if_not_exists"]:
                return
            if not m["replace"]:
                raise _error(f"SQL compilation error:\nObject '{'.'.join(target)}' already exists.")
        # A zero-copy clone, modelled as a copy (fakesnow's own clone drops OR REPLACE).
        with self._ddl_transaction(cursor) as run:
            run(f"create or replace table {_quote(*target)} as select * from {_quote(*source)}")
        self._set_transient(target, target_transient)

    def _clone_schema(self, cursor: FakeSnowflakeCursor, m: re.Match[str]) -> None:
        target, source = self._schema(cursor, m["target"]), self._schema(cursor, m["source"])
        self._require_schema(cursor, source)
        target_transient = bool(m["transient"])
        if source in self.transient_schemas and not target_transient:
            raise _error(TRANSIENT_TO_PERMANENT_MESSAGE, errno=2203, sqlstate="0A000")
        if self._schema_exists(cursor, *target):
            if m["if_not_exists"]:
                return
            if not m["replace"]:
                raise _error(f"SQL compilation error:\nObject '{'.'.join(target)}' already exists.")
        if self._tables_in(cursor, *source, kind="VIEW"):
            raise NotImplementedError(f"Stand-in: cloning schema {'.'.join(source)} that holds views")
        tables = self._tables_in(cursor, *source)
        with self._ddl_transaction(cursor) as run:
            run(f"drop schema if exists {_quote(*target)} cascade")
            run(f"create schema {_quote(*target)}")
            for table in tables:
                run(f"create table {_quote(*target, table)} as select * from {_quote(*source, table)}")
        self._forget_schema(target)
        if target_transient:
            self.transient_schemas.add(target)
        # Tables keep their kind in a schema clone: transient ones are cloned as transient.
        for table in tables:
            self._set_transient((*target, table), self._is_transient((*source, table)))

    def _swap_tables(self, cursor: FakeSnowflakeCursor, a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
        self._require_table(cursor, a)
        self._require_table(cursor, b)
        scratch = (a[0], a[1], f"__STANDIN_SWAP_{next(_swap_names)}")
        with self._ddl_transaction(cursor) as run:
            run(f"create table {_quote(*scratch)} as select * from {_quote(*a)}")
            run(f"create or replace table {_quote(*a)} as select * from {_quote(*b)}")
            run(f"create or replace table {_quote(*b)} as select * from {_quote(*scratch)}")
            run(f"drop table {_quote(*scratch)}")
        a_transient, b_transient = self._is_transient(a), self._is_transient(b)
        self._set_transient(a, b_transient)
        self._set_transient(b, a_transient)

    def _swap_schemas(self, cursor: FakeSnowflakeCursor, a: tuple[str, str], b: tuple[str, str]) -> None:
        self._require_schema(cursor, a)
        self._require_schema(cursor, b)
        if a[0] != b[0]:
            raise NotImplementedError("Stand-in: swapping schemas of different databases")
        for schema in (a, b):
            if self._tables_in(cursor, *schema, kind="VIEW"):
                raise NotImplementedError(f"Stand-in: swapping schema {'.'.join(schema)} that holds views")
        a_tables, b_tables = self._tables_in(cursor, *a), self._tables_in(cursor, *b)
        scratch = (a[0], f"__STANDIN_SWAP_{next(_swap_names)}")

        def move(tables: list[str], source: tuple[str, str], target: tuple[str, str]) -> None:
            for table in tables:
                run(f"create table {_quote(*target, table)} as select * from {_quote(*source, table)}")
                run(f"drop table {_quote(*source, table)}")

        with self._ddl_transaction(cursor) as run:
            run(f"create schema {_quote(*scratch)}")
            move(a_tables, a, scratch)
            move(b_tables, b, a)
            move(a_tables, scratch, b)
            run(f"drop schema {_quote(*scratch)}")
        a_kinds = {t: self._is_transient((*a, t)) for t in a_tables}
        b_kinds = {t: self._is_transient((*b, t)) for t in b_tables}
        a_schema_transient, b_schema_transient = a in self.transient_schemas, b in self.transient_schemas
        self._forget_schema(a)
        self._forget_schema(b)
        if a_schema_transient:
            self.transient_schemas.add(b)
        if b_schema_transient:
            self.transient_schemas.add(a)
        for table, transient in b_kinds.items():
            self._set_transient((*a, table), transient)
        for table, transient in a_kinds.items():
            self._set_transient((*b, table), transient)

    # ---- bookkeeping of transient objects after statements fakesnow runs ------------------------

    def _newly_created_table(self, cursor: FakeSnowflakeCursor, statement: str) -> bool:
        """Whether `statement` creates a table (`if not exists` of an existing one does not)."""
        if not (m := CREATE_TABLE.match(statement)):
            return False
        if m["if_not_exists"] and not m["replace"]:
            db, schema, table = self._table(cursor, m["target"])
            return table not in self._tables_in(cursor, db, schema)
        return True

    def _track(self, cursor: FakeSnowflakeCursor, statement: str, created_table: bool) -> None:
        if m := CREATE_SCHEMA.fullmatch(statement):
            schema = self._schema(cursor, m["target"])
            if m["replace"]:
                self._forget_schema(schema)
            if m["transient"] and (m["replace"] or schema not in self.transient_schemas):
                self.transient_schemas.add(schema)
        elif (m := CREATE_TABLE.match(statement)) and created_table:
            table = self._table(cursor, m["target"])
            self._set_transient(table, bool(m["transient"]) or table[:2] in self.transient_schemas)
        elif m := DROP_TABLE.fullmatch(statement):
            self.transient_tables.discard(self._table(cursor, m["target"]))
        elif m := DROP_SCHEMA.match(statement):
            self._forget_schema(self._schema(cursor, m["target"].split()[0]))

    def _set_transient(self, table: tuple[str, str, str], transient: bool) -> None:
        if transient:
            self.transient_tables.add(table)
        else:
            self.transient_tables.discard(table)

    def _forget_schema(self, schema: tuple[str, str]) -> None:
        self.transient_schemas.discard(schema)
        self.transient_tables -= {t for t in self.transient_tables if t[:2] == schema}
