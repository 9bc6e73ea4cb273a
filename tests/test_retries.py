"""A run worker evicted while dbt is mid-build (SIGTERM, then SIGKILL to what is left after
the grace period, as Kubernetes does to a pod) is
retried by the real daemon from asset failure: the retry builds exactly what was missing,
nothing is built twice, and green ends as an uninterrupted release would have left it."""

from collections import Counter

import dagster as dg

from dagster_code.config import load_project_config
from tests.conftest import DBT_PROJECT_DIR
from tests.daemon import evict_process, materialized_keys_of_run, run_worker_pid
from tests.support import (
    GREEN,
    MARTS,
    green_release_ids,
    load_raw,
    release_log,
    reset_release_schemas,
    run_job,
    schema_contents,
)
from tests.waiting import wait_until

RETRY_TEST_SLOW_MODEL_SECONDS = 40
# The example's dagster.yml passes this run tag's value as the var its sleep_seconds pre-hooks read.
SLOW_MODEL_SECONDS_TAG = load_project_config(DBT_PROJECT_DIR).vars_from_run_tags["slow_model_seconds"]
# Kubernetes' default terminationGracePeriodSeconds is 30; the run worker needs far less.
WORKER_EVICTION_GRACE_SECONDS = 15
# Built before the slow model's pre-hook starts sleeping.
DONE_BEFORE_KILL = {dg.AssetKey(["release", "blue_prepared"]), dg.AssetKey(["stg_shop__orders"])}
SLOW_MODEL_KEY = dg.AssetKey(["int_orders_enriched"])


def _finished(instance: dg.DagsterInstance, run_id: str) -> tuple[bool, object]:
    run = instance.get_run_by_id(run_id)
    return run.is_finished, run if run.is_finished else (run.status, materialized_keys_of_run(instance, run_id))


def _children(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterRun]:
    return instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))


def _failures(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Step failures and error-level log lines (dbt's own errors) of a run."""
    failures = []
    for record in instance.all_logs(run_id):
        if record.is_dagster_event and record.dagster_event.is_step_failure:
            failures.append(record.dagster_event.step_failure_data.error.to_string())
    return failures


def test_sigterm_mid_build_retry_skips_materialized_assets(defs, warehouse, instance, daemon):
    load_raw(warehouse)
    reference = run_job(defs, "release_job", instance)
    assert reference.success
    uninterrupted_green = schema_contents(warehouse, GREEN)
    reset_release_schemas(warehouse)
    job_keys = set(defs.resolve_job_def("release_job").asset_layer.executable_asset_keys)

    parent_id = daemon.launch(
        instance, "release_job", tags={SLOW_MODEL_SECONDS_TAG: str(RETRY_TEST_SLOW_MODEL_SECONDS)}
    )

    def reached_slow_model() -> tuple[bool, object]:
        keys = materialized_keys_of_run(instance, parent_id)
        return keys >= DONE_BEFORE_KILL, keys if keys >= DONE_BEFORE_KILL else (
            instance.get_run_by_id(parent_id).status,
            keys,
        )

    done_before_kill = wait_until("the parent run to build staging and reach the slow model", reached_slow_model, 600)
    assert SLOW_MODEL_KEY not in done_before_kill
    evict_process(run_worker_pid(instance, parent_id), WORKER_EVICTION_GRACE_SECONDS)

    parent = wait_until("the parent run to fail", lambda: _finished(instance, parent_id), 300)
    assert parent.status == dg.DagsterRunStatus.FAILURE
    assert parent.tags["dagster/failure_reason"] == "UNEXPECTED_TERMINATION"
    (retry,) = wait_until(
        "the retry daemon to create a retry run",
        lambda: (
            bool(children := _children(instance, parent_id)),
            children or {"daemon exit code": daemon.process.poll(), **instance.get_run_by_id(parent_id).tags},
        ),
        300,
    )
    retry = wait_until("the retry run to finish", lambda: _finished(instance, retry.run_id), 600)

    assert retry.status == dg.DagsterRunStatus.SUCCESS, "\n".join(_failures(instance, retry.run_id))
    assert retry.tags["dagster/retry_strategy"] == "FROM_ASSET_FAILURE"
    assert retry.tags["dagster/root_run_id"] == parent_id
    materialized_by_parent = materialized_keys_of_run(instance, parent_id)
    assert set(retry.asset_selection) == job_keys - materialized_by_parent
    assert _children(instance, retry.run_id) == []
    counts = Counter()
    for run_id in (parent_id, retry.run_id):
        counts.update(
            r.dagster_event.asset_key
            for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        )
    assert set(counts) == job_keys
    assert {key for key, count in counts.items() if count > 1} == set()
    # Green holds the whole release, built once, equal to an uninterrupted release.
    assert schema_contents(warehouse, GREEN) == uninterrupted_green
    assert green_release_ids(warehouse) == {mart: {parent_id} for mart in MARTS}
    assert [release for release, _ in release_log(warehouse)] == [parent_id]
