"""Blue/green releases on a real PostgreSQL: a clean release promotes every mart at once; a
failing test leaves green exactly as it was."""

import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import dagster as dg
import psycopg
import psycopg.sql
import pytest
from example_extras import raw_data

from dagster_code.dbt_cli import PARTIAL_PARSE_FILE, dbt_resource, run_operation
from dagster_code.local.postgres_server import start_postgres_server
from dagster_code.project import dbt_project
from dagster_code.project_definitions import build_definitions
from dagster_code.translator import BLUE_PREPARED_KEY, GREEN_PROMOTED_KEY
from tests.conftest import DBT_PROJECT_DIR, WAREHOUSE_DATABASE, warehouse_env
from tests.support import (
    BLUE,
    GREEN,
    MARTS,
    RELEASE_PREPARED,
    green_release_ids,
    load_raw,
    materialized_keys_of_result,
    parsed_project,
    query,
    release_log,
    run_job,
    schema_contents,
    table_exists,
)
from tests.waiting import wait_until

# Release ids are run ids (checked by the platform and by the macros); named ones for the tests
# that run the operations themselves.
FIRST, OLDER, NEWER, HELD, BAD_VAR, WIDE, NEXT = (
    str(uuid.uuid5(uuid.NAMESPACE_URL, name)) for name in ("first", "older", "newer", "held", "bad-var", "wide", "next")
)


def test_release_builds_every_model_and_matches_generated_totals(defs, warehouse, instance):
    data = load_raw(warehouse)
    summary = raw_data.summarize(data)

    result = run_job(defs, "release_job", instance)

    assert result.success
    job_keys = set(defs.resolve_job_def("release_job").asset_layer.executable_asset_keys)
    assert materialized_keys_of_result(result) == job_keys
    assert all(check.passed for check in result.get_asset_check_evaluations())
    assert len(result.get_asset_check_evaluations()) > 0
    counts = summary["row_counts"]
    assert query(warehouse, f"select count(*) from {GREEN}.fct_orders")[0][0] == counts["orders"]
    assert query(warehouse, f"select count(*) from {GREEN}.dim_customers")[0][0] == counts["customers"]
    assert query(warehouse, f"select count(*) from {GREEN}.dim_products")[0][0] == counts["products"]
    for table, column in (
        ("fct_orders", "revenue"),
        ("dim_customers", "lifetime_revenue"),
        ("dim_products", "revenue"),
    ):
        total = query(warehouse, f"select sum({column}) from {GREEN}.{table}")[0][0]
        assert Decimal(total) == summary["total_revenue"], table
    returned = query(warehouse, f"select count(*) from {GREEN}.fct_orders where order_status = 'returned'")
    assert returned[0][0] == summary["orders_per_status"]["returned"]


def test_clean_release_promotes_all_marts_in_one_release(defs, warehouse, instance):
    load_raw(warehouse)

    first = run_job(defs, "release_job", instance)
    second = run_job(defs, "release_job", instance)

    assert first.success and second.success
    assert green_release_ids(warehouse) == {mart: {second.run_id} for mart in MARTS}
    assert [release for release, _ in release_log(warehouse)] == [first.run_id, second.run_id]
    assert release_log(warehouse)[-1][1] == sorted(MARTS)
    # Swapping keeps the previous release in blue until the next release clones over it.
    assert {mart: ids for mart, ids in _release_ids(warehouse, BLUE).items()} == {
        mart: {first.run_id} for mart in MARTS
    }
    # Provenance: what built each green table, recorded with the release that promoted it.
    asset_graph = defs.resolve_asset_graph()
    ((built_by,),) = query(
        warehouse, f"select built_by from {GREEN}._release_log where release_id = %s", (second.run_id,)
    )
    assert built_by == {
        mart: {
            "model": mart,
            "code_version": asset_graph.get(dg.AssetKey(mart)).code_version,
            "run_id": second.run_id,
            "image": None,
        }
        for mart in MARTS
    }
    assert all(by["code_version"] for by in built_by.values()), built_by


def test_a_release_parses_the_project_once(defs, warehouse, instance, capfd, tmp_path, monkeypatch):
    """A release runs dbt three times (clone, build, promote). A new release id is a new var, so
    the first invocation parses the whole project; the others find the parse state it left
    (dbt_cli.share_parse_state) and parse nothing again."""
    # A target folder of its own, as a run pod has: the project's is shared by the parallel
    # workers, whose runs (other vars) replace its parse state between this run's invocations.
    own_target = tmp_path / "target"
    own_target.mkdir()
    shutil.copy(DBT_PROJECT_DIR / "target" / PARTIAL_PARSE_FILE, own_target)
    monkeypatch.setenv("DBT_TARGET_PATH", str(own_target))
    load_raw(warehouse)
    capfd.readouterr()

    result = run_job(defs, "release_job", instance)

    assert result.success
    reparse = "Unable to do partial parsing because config vars"
    steps_that_reparsed = {
        entry.step_key for entry in instance.all_logs(result.run_id) if reparse in entry.user_message
    }
    assert steps_that_reparsed == {"release__blue_prepared"}
    # The build's dbt output reaches only stdout: one full parse in all, the clone's.
    assert capfd.readouterr().out.count(reparse) == 1


def _release_ids(conninfo, schema):
    return {
        mart: {row[0] for row in query(conninfo, f"select distinct release_id from {schema}.{mart}")} for mart in MARTS
    }


def test_failing_test_leaves_green_identical_and_blue_unpromoted(defs, warehouse, instance):
    load_raw(warehouse)
    published = run_job(defs, "release_job", instance)
    assert published.success
    green_before = schema_contents(warehouse, GREEN)
    # A negative quantity: every model builds (nothing upstream tests quantities), then the
    # mart test on fct_orders' revenue (severity error) fails.
    with psycopg.connect(warehouse) as conn:
        conn.execute(
            "update raw.orders set quantity = -quantity where order_id = "
            "(select min(order_id) from raw.orders where status <> 'returned')"
        )
        conn.execute("update raw.products set price = price + 1")

    failed = run_job(defs, "release_job", instance)

    assert not failed.success
    failed_checks = {c.asset_key.to_user_string() for c in failed.get_asset_check_evaluations() if not c.passed}
    assert "fct_orders" in failed_checks
    promoted = [
        e for e in failed.get_asset_materialization_events() if e.asset_key.path == ["release", "green_promoted"]
    ]
    assert promoted == []
    assert schema_contents(warehouse, GREEN) == green_before
    assert green_release_ids(warehouse) == {mart: {published.run_id} for mart in MARTS}
    assert [release for release, _ in release_log(warehouse)] == [published.run_id]
    # Blue keeps the unpromoted build of the failed release for inspection.
    assert _release_ids(warehouse, BLUE)["fct_orders"] == {failed.run_id}
    assert table_exists(warehouse, BLUE, "fct_orders")


def test_promotion_replayed_for_the_same_release_changes_nothing(defs, warehouse, instance):
    load_raw(warehouse)
    result = run_job(defs, "release_job", instance)
    assert result.success
    green_before = schema_contents(warehouse, GREEN)

    # A run worker that died after the promotion committed but before Dagster recorded it:
    # the retry runs the promotion again under the same release id.
    replay = run_job(
        defs,
        "release_job",
        instance,
        tags={"dagster/root_run_id": result.run_id},
    )

    assert replay.success
    assert [release for release, _ in release_log(warehouse)] == [result.run_id]
    assert schema_contents(warehouse, GREEN) == green_before
    assert green_release_ids(warehouse) == {mart: {result.run_id} for mart in MARTS}


def _release_models(defs) -> list[str]:
    release_job = defs.resolve_job_def("release_job")
    keys = set(release_job.asset_layer.executable_asset_keys) - {BLUE_PREPARED_KEY, GREEN_PROMOTED_KEY}
    return sorted(key.to_user_string() for key in keys)


def _step_failure_message(result: dg.ExecuteInProcessResult, step_key: str) -> str:
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == step_key, failure.step_key
    data = failure.step_failure_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message


def test_green_promoted_alone_is_refused_naming_what_its_run_group_did_not_build(defs, warehouse, instance):
    """One click on release/green_promoted after two releases: its run group built nothing, and
    blue holds the release before the last (a promotion swaps), so promoting blue would roll
    consumers back. Refused before any SQL, naming what is missing and the job to launch."""
    load_raw(warehouse)
    assert run_job(defs, "release_job", instance).success
    assert run_job(defs, "release_job", instance).success
    green_before, log_before = schema_contents(warehouse, GREEN), release_log(warehouse)

    alone = defs.resolve_job_def("release_job").execute_in_process(
        instance=instance, asset_selection=[GREEN_PROMOTED_KEY], raise_on_error=False
    )

    assert not alone.success
    message = _step_failure_message(alone, "release__green_promoted")
    models = _release_models(defs)
    assert len(models) > 5, models
    assert f"Release {alone.run_id} cannot be promoted" in message, message
    assert (
        f"did not materialize release/blue_prepared nor {len(models)} of its {len(models)} release models "
        f"({', '.join(models[:5])} and {len(models) - 5} more)"
    ) in message, message
    assert "Launch release_job" in message, message
    assert schema_contents(warehouse, GREEN) == green_before
    assert release_log(warehouse) == log_before


def test_reexecuted_promotion_of_a_group_whose_blue_another_release_reused_is_refused(defs, warehouse, instance):
    """A run group prepared blue and built every model, then another release was prepared and
    promoted. Re-executing the first group's promotion passes Dagster's check (its group built
    everything, with this code) but blue now holds the release before the last: the promotion
    macro refuses, green unchanged."""
    load_raw(warehouse)
    release_job = defs.resolve_job_def("release_job")
    assert run_job(defs, "release_job", instance).success
    older = release_job.execute_in_process(
        instance=instance,
        asset_selection=list(set(release_job.asset_layer.executable_asset_keys) - {GREEN_PROMOTED_KEY}),
        raise_on_error=False,
    )
    assert older.success
    newer = run_job(defs, "release_job", instance)
    assert newer.success
    green_before, log_before = schema_contents(warehouse, GREEN), release_log(warehouse)

    reexecuted = release_job.execute_in_process(
        instance=instance,
        asset_selection=[GREEN_PROMOTED_KEY],
        tags={"dagster/root_run_id": older.run_id, "dagster/parent_run_id": older.run_id},
        raise_on_error=False,
    )

    assert not reexecuted.success
    message = _step_failure_message(reexecuted, "release__green_promoted")
    assert f"Release {older.run_id} cannot be promoted: blue was last prepared for release {newer.run_id}" in message
    assert f"Green is unchanged; it holds release {newer.run_id}" in message, message
    assert schema_contents(warehouse, GREEN) == green_before
    assert release_log(warehouse) == log_before
    assert green_release_ids(warehouse) == {mart: {newer.run_id} for mart in MARTS}


def test_promotion_of_a_blue_prepared_before_another_release_reached_green_is_refused(warehouse, tmp_path):
    """Blue was prepared for a release from the green of the time; then another release reached
    green (prepared in a blue of its own, or while this clone ran). Promoting the first would
    publish tables built on the green before: refused, green unchanged."""
    other_blue = {"blue_schema": f"{BLUE}_other"}

    def build_in(schema: str, release: str) -> None:
        with psycopg.connect(warehouse, autocommit=True) as conn:
            conn.execute(f"create schema if not exists {schema}")
            for table in MARTS:
                conn.execute(f"drop table if exists {schema}.{table}")
                conn.execute(f"create table {schema}.{table} as select '{release}' as release_id, '{release}' as built")

    for release, dbt_vars in ((FIRST, {}), (OLDER, {}), (NEWER, other_blue)):
        assert _operation(tmp_path, "clone_green_to_blue", release, dbt_vars).returncode == 0
        build_in(dbt_vars.get("blue_schema", BLUE), release)
        if release != OLDER:
            promoted = _operation(tmp_path, "promote_blue_to_green", release, dbt_vars)
            assert promoted.returncode == 0, promoted.stdout
    green_before = schema_contents(warehouse, GREEN)

    refused = _operation(tmp_path, "promote_blue_to_green", OLDER)

    assert refused.returncode != 0
    assert (
        f"Release {OLDER} cannot be promoted: blue was prepared from release {FIRST}, but release {NEWER} was "
        f"promoted since, and promoting this one would roll it back. Green is unchanged; it holds release {NEWER}."
    ) in refused.stdout, refused.stdout
    assert schema_contents(warehouse, GREEN) == green_before
    assert [release for release, _ in release_log(warehouse)] == [FIRST, NEWER]


def test_promotion_gives_way_to_consumers_never_aborting_them_and_waits_a_bounded_time(
    defs, warehouse, instance, tmp_path
):
    """A consumer's transaction reads the last promoted table; the promotion takes the tables
    before it and waits for that one; the consumer then reads the first. PostgreSQL breaks such
    a cycle by aborting one side, the consumer's query or the release. The promotion gives way
    instead, before the deadlock check, and promotes once the consumer is done. Behind a
    consumer that never lets go it gives up after blue_green_lock_wait_seconds, naming it."""
    load_raw(warehouse)
    published = run_job(defs, "release_job", instance)
    assert published.success
    first_table, *_, last_table = sorted(MARTS)

    release_finished = threading.Event()

    def promotion_waits_for_last_table() -> tuple[bool, list[tuple]]:
        assert not release_finished.is_set(), f"the release finished without waiting for {GREEN}.{last_table}"
        waiting = query(
            warehouse,
            "select pid, mode from pg_locks where relation = to_regclass(%s) and not granted",
            (f"{GREEN}.{last_table}",),
        )
        return bool(waiting), waiting

    def consumer() -> list[str]:
        """One transaction, as a report reading several marts would be."""
        with psycopg.connect(warehouse) as conn:
            seen = [conn.execute(f"select min(release_id) from {GREEN}.{last_table}").fetchone()[0]]
            wait_until(
                f"the promotion to wait for its lock on {GREEN}.{last_table}", promotion_waits_for_last_table, 300, 0.05
            )
            seen.append(conn.execute(f"select min(release_id) from {GREEN}.{first_table}").fetchone()[0])
        return seen

    with ThreadPoolExecutor(max_workers=1) as pool:
        consumer_reads = pool.submit(consumer)
        second = run_job(defs, "release_job", instance)
        release_finished.set()
        seen = consumer_reads.result(timeout=60)

    assert second.success
    # The consumer's transaction saw one release, the one before.
    assert seen == [published.run_id, published.run_id]
    assert green_release_ids(warehouse) == {mart: {second.run_id} for mart in MARTS}
    assert [release for release, _ in release_log(warehouse)] == [published.run_id, second.run_id]

    # A consumer holding a table throughout: the promotion gives up, names it, changes nothing.
    with psycopg.connect(warehouse) as holder:
        holder.execute(f"select count(*) from {GREEN}.{last_table}")
        assert _operation(tmp_path, "clone_green_to_blue", HELD).returncode == 0
        held = _operation(tmp_path, "promote_blue_to_green", HELD, {"blue_green_lock_wait_seconds": 2})
        assert held.returncode != 0
        assert f"Release {HELD} cannot be promoted" in held.stdout, held.stdout
        assert f"{GREEN}.{last_table} (pid {holder.info.backend_pid})" in held.stdout, held.stdout
        holder.execute(f"select count(*) from {GREEN}.{first_table}")  # never aborted
    assert green_release_ids(warehouse) == {mart: {second.run_id} for mart in MARTS}
    assert [release for release, _ in release_log(warehouse)] == [published.run_id, second.run_id]
    assert _operation(tmp_path, "clone_green_to_blue", BAD_VAR).returncode == 0
    bad = _operation(tmp_path, "promote_blue_to_green", BAD_VAR, {"blue_green_lock_wait_seconds": "soon"})
    assert "var blue_green_lock_wait_seconds must be a positive number of seconds, got 'soon'" in bad.stdout


# Linux refuses a single command-line argument longer than this (MAX_ARG_STRLEN).
LINUX_ARGUMENT_LIMIT_BYTES = 128 * 1024


@pytest.fixture
def default_sized_warehouse(dbt_manifest, monkeypatch) -> Iterator[str]:
    """A warehouse on a PostgreSQL server of PostgreSQL's default size, as the chart's embedded
    one: max_connections 100, so a lock table of 6,400 locks (and some slack) shared by all."""
    server = start_postgres_server(max_connections=100)
    try:
        conninfo = server.create_database(WAREHOUSE_DATABASE)
        for key, value in warehouse_env(server, WAREHOUSE_DATABASE).items():
            monkeypatch.setenv(key, value)
        yield conninfo
    finally:
        server.stop()


def test_a_release_of_thousands_of_tables_is_cloned_and_promoted(default_sized_warehouse):
    """The release's operations at the scale of a large project. Their arguments (every table
    and its provenance) were one command-line argument over Linux's limit at 5,000 models (E2BIG
    from exec: the release built but could not be promoted), and a clone of every table in one
    transaction ran out of PostgreSQL's lock table ("out of shared memory") from about 3,000."""
    warehouse = default_sized_warehouse
    prefix = "model_of_a_large_project_with_a_long_name_"
    tables = [f"{prefix}{number:05d}" for number in range(3000)]

    def build_in_blue() -> None:
        with psycopg.connect(warehouse, autocommit=True) as conn:
            conn.execute(f"create schema if not exists {BLUE}")
            conn.execute(
                f"do $$ begin for n in 0..{len(tables) - 1} loop execute format("
                f"'create table {BLUE}.%I as select %s as id', '{prefix}' || lpad(n::text, 5, '0'), n); "
                "end loop; end $$"
            )

    def tables_in(schema: str) -> list[str]:
        listed = query(warehouse, "select table_name from information_schema.tables where table_schema = %s", (schema,))
        return sorted(name for (name,) in listed)

    context, dbt = dg.build_op_context(), dbt_resource(dbt_project())
    wide = {"release_id": WIDE}
    run_operation(context, dbt, "clone_green_to_blue", {**wide, "tables": tables}, wide)
    build_in_blue()
    built_by = {
        table: {"model": f"large/{table}", "code_version": "0" * 40, "run_id": WIDE, "image": "example:1"}
        for table in tables
    }
    macro_args = {"release_id": WIDE, "tables": tables, "built_by": built_by}
    assert len(json.dumps(macro_args)) > LINUX_ARGUMENT_LIMIT_BYTES

    run_operation(context, dbt, "promote_blue_to_green", macro_args, wide)

    assert [name for name in tables_in(GREEN) if name != "_release_log"] == tables
    [(release, logged_tables, logged_built_by)] = query(
        warehouse, f"select release_id, tables, built_by from {GREEN}._release_log"
    )
    assert (release, sorted(logged_tables), logged_built_by) == (WIDE, tables, built_by)

    # The next release starts from a copy of every table green publishes, over the blue tables
    # of the release before.
    build_in_blue()
    run_operation(context, dbt, "clone_green_to_blue", {"release_id": NEXT, "tables": tables}, {"release_id": NEXT})
    assert [name for name in tables_in(BLUE) if name != RELEASE_PREPARED] == tables
    assert query(warehouse, f"select id from {BLUE}.{tables[-1]}") == [(len(tables) - 1,)]


def _operation(tmp_path, macro: str, release: str, dbt_vars: dict | None = None) -> subprocess.CompletedProcess:
    """A release's operation (clone or promotion) as its asset runs it, with vars of the test's own."""
    return subprocess.run(
        [
            "dbt",
            "run-operation",
            macro,
            "--args",
            json.dumps({"release_id": release, "tables": sorted(MARTS)}),
            "--vars",
            json.dumps({"release_id": release, **(dbt_vars or {})}),
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp_path / "target"),
            "--target",
            "postgres",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def retry_on_changed_code(instance, parent_run_id, retried_keys, tmp_path, edit) -> dg.ExecuteInProcessResult:
    """The retry of `parent_run_id` (a root run) by the definitions of a copy of the example changed
    by `edit`, as after a deploy between a failure and its retry."""
    changed = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, changed, ignore=shutil.ignore_patterns("target", "logs"))
    edit(changed)
    return (
        build_definitions(parsed_project(changed))
        .resolve_job_def("release_job")
        .execute_in_process(
            instance=instance,
            asset_selection=list(retried_keys),
            tags={"dagster/root_run_id": parent_run_id, "dagster/parent_run_id": parent_run_id},
            raise_on_error=False,
        )
    )


def _change_orders_staging_sql(project):
    model = project / "models" / "staging" / "stg_shop__orders.sql"
    model.write_text(model.read_text() + "\n-- changed by the next deployment\n")


@pytest.mark.parametrize(
    ("retried", "refused_by"),
    [
        # The parent built every model and stopped before promoting: the promotion refuses.
        ((), "release__green_promoted"),
        # The parent stopped before the marts: the retry's dbt step refuses before dbt runs.
        (MARTS, "dbt_models"),
    ],
    ids=["at-promotion", "before-dbt"],
)
def test_release_built_by_two_code_versions_is_refused_and_green_unchanged(
    defs, warehouse, instance, tmp_path, retried, refused_by
):
    """A retry runs the code deployed when it starts. When a staging model's SQL changed between the
    parent (stopped by a fault, as an evicted run is) and its retry, FROM_ASSET_FAILURE keeps the
    parent's tables: the retry refuses, naming the model and both versions, before it changes
    anything, and green keeps the release before."""
    load_raw(warehouse)
    before = run_job(defs, "release_job", instance)
    assert before.success
    green_before = schema_contents(warehouse, GREEN)
    release_job = defs.resolve_job_def("release_job")
    retried_keys = {GREEN_PROMOTED_KEY, *(dg.AssetKey(model) for model in retried)}
    built_keys = set(release_job.asset_layer.executable_asset_keys) - retried_keys
    parent = release_job.execute_in_process(instance=instance, asset_selection=list(built_keys), raise_on_error=False)
    assert parent.success
    blue_before = schema_contents(warehouse, BLUE)

    # The code deployed before the retry: stg_shop__orders's SQL changed.
    retry = retry_on_changed_code(instance, parent.run_id, retried_keys, tmp_path, _change_orders_staging_sql)

    assert not retry.success
    (failure,) = [e for e in retry.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == refused_by
    assert retry.get_asset_materialization_events() == []
    assert schema_contents(warehouse, BLUE) == blue_before
    message = failure.step_failure_data.user_failure_data.description
    assert "two versions of the code" in message and "Launch release_job again" in message, message
    changed_lines = [line for line in message.splitlines() if "built by code version" in line]
    assert [line.split(":")[0] for line in changed_lines] == ["stg_shop__orders"], message
    assert parent.run_id in changed_lines[0]
    assert schema_contents(warehouse, GREEN) == green_before
    assert [release for release, _ in release_log(warehouse)] == [before.run_id]


def _quote_shop_sources(project):
    path = project / "models" / "staging" / "_shop__sources.yml"
    text = path.read_text()
    assert "    schema: raw\n" in text
    path.write_text(text.replace("    schema: raw\n", "    schema: raw\n    quoting:\n      identifier: true\n", 1))


def _change_start_date_var(project):
    path = project / "dbt_project.yml"
    text = path.read_text()
    assert 'start_date: "2024-01-01"' in text
    path.write_text(text.replace('start_date: "2024-01-01"', 'start_date: "2023-01-01"'))


@pytest.mark.parametrize(
    ("edit", "retried", "refused_by", "changed_part", "changed_models"),
    [
        # The relation a source names: its models' code versions change, and the source is named.
        (_quote_shop_sources, (), "release__green_promoted", "source 'shop.orders'", {"stg_shop__orders"}),
        # A var: no model's SQL changes, only the release's fingerprint.
        (_change_start_date_var, MARTS, "dbt_models", "var 'start_date'", set()),
    ],
    ids=["source-at-promotion", "var-before-dbt"],
)
def test_release_retried_under_changed_source_or_var_is_refused_naming_it(
    defs, warehouse, instance, tmp_path, edit, retried, refused_by, changed_part, changed_models
):
    """What builds a release beyond its models' SQL changed between a stopped run and its retry:
    the retry refuses before it changes anything, naming what changed."""
    load_raw(warehouse)
    release_job = defs.resolve_job_def("release_job")
    retried_keys = {GREEN_PROMOTED_KEY, *(dg.AssetKey(model) for model in retried)}
    built_keys = set(release_job.asset_layer.executable_asset_keys) - retried_keys
    parent = release_job.execute_in_process(instance=instance, asset_selection=list(built_keys), raise_on_error=False)
    assert parent.success
    blue_before = schema_contents(warehouse, BLUE, tables=sorted(set(MARTS) - set(retried)))

    retry = retry_on_changed_code(instance, parent.run_id, retried_keys, tmp_path, edit)

    assert not retry.success
    (failure,) = [e for e in retry.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == refused_by
    assert retry.get_asset_materialization_events() == []
    assert schema_contents(warehouse, BLUE, tables=sorted(set(MARTS) - set(retried))) == blue_before
    message = failure.step_failure_data.user_failure_data.description
    changed_lines = [line for line in message.splitlines() if line.startswith("changed since the release started: ")]
    assert any(line.startswith(f"changed since the release started: {changed_part} ") for line in changed_lines), (
        message
    )
    models_named = {line.split(":")[0] for line in message.splitlines() if "built by code version" in line}
    assert changed_models <= models_named, message
    assert not table_exists(warehouse, GREEN, "fct_orders")


# A table name no quoting function of dbt's survives: adapter.quote leaves its `"` as is.
QUOTED_NAME = """mart "with" 'quotes'"""


def test_a_table_named_with_quotes_is_cloned_and_promoted(warehouse):
    """Every identifier and literal of the release's macros is quoted: a table whose name holds
    both quotes goes through the clone and the promotion, and is logged by its name."""
    context, dbt = dg.build_op_context(), dbt_resource(dbt_project())
    tables = [QUOTED_NAME]
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("create schema {}").format(psycopg.sql.Identifier(GREEN)))
        green_table = psycopg.sql.Identifier(GREEN, QUOTED_NAME)
        conn.execute(psycopg.sql.SQL("create table {} as select 'green' as built").format(green_table))

    run_operation(context, dbt, "clone_green_to_blue", {"release_id": FIRST, "tables": tables}, {"release_id": FIRST})
    blue_table = psycopg.sql.Identifier(BLUE, QUOTED_NAME)
    with psycopg.connect(warehouse, autocommit=True) as conn:
        assert conn.execute(psycopg.sql.SQL("select built from {}").format(blue_table)).fetchall() == [("green",)]
        conn.execute(psycopg.sql.SQL("update {} set built = 'blue'").format(blue_table))
    built_by = {QUOTED_NAME: {"model": QUOTED_NAME, "run_id": FIRST}}
    macro_args = {"release_id": FIRST, "tables": tables, "built_by": built_by}
    run_operation(context, dbt, "promote_blue_to_green", macro_args, {"release_id": FIRST})

    with psycopg.connect(warehouse) as conn:
        assert conn.execute(psycopg.sql.SQL("select built from {}").format(green_table)).fetchall() == [("blue",)]
    [(release, logged_tables, logged_built_by)] = query(
        warehouse, f"select release_id, tables, built_by from {GREEN}._release_log"
    )
    assert (release, logged_tables, logged_built_by) == (FIRST, tables, built_by)


@pytest.mark.parametrize("macro", ["clone_green_to_blue", "promote_blue_to_green"])
def test_a_release_id_with_a_quote_is_refused_before_any_sql(warehouse, tmp_path, macro):
    """The macros check the id themselves (a caller other than the platform's assets)."""
    refused = _operation(tmp_path, macro, "x'; drop schema green cascade; --")
    assert refused.returncode != 0
    assert "release_id must be a Dagster run id" in refused.stdout, refused.stdout
    assert """got "x'; drop schema green cascade; --". Nothing was done""" in refused.stdout, refused.stdout
    # Nothing ran: not even blue's schema was created.
    assert query(warehouse, "select schema_name from information_schema.schemata where schema_name = %s", (BLUE,)) == []
