"""What the chaos scenarios check about a release: the uninterrupted reference release, a release
launched into the slow-model window a fault lands in, and the exactly-once checks of a run group
and of the green reader (scenario 10), read through the GraphQL API. Launching and following
releases is k8s_tests/harness/release.py, shared with the benchmark.

A project's pause tag (ReleaseProject: the example's slow-model tag, or another project's) makes
one model sleep before it builds, after the assets before it are materialized (the example's
staging models and `release/blue_prepared`): a fault injected then hits a run with some assets
done and others not.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.dagster_api import DagsterApi, Run, failed_blocking_checks, materialized
from k8s_tests.harness.deployment import Deployment
from k8s_tests.harness.example import EXAMPLE_RELEASE, ORDERS_SNAPSHOT, SNAPSHOT_KEYS, SNAPSHOT_SCHEMA
from k8s_tests.harness.release import (
    GreenReader,
    ReleaseProject,
    checks_pending,
    failure_messages,
    materialization_counts,
    run_release,
    wait_group_finished,
    wait_retry,
)
from tests.support import GREEN, green_release_ids, query, release_log, reset_release_schemas, schema_contents

# Only the window a fault must land in: the test sees the models before it built within seconds.
CHAOS_SLOW_MODEL_SECONDS = 30
# The parent reaches the slow model after its pod starts and staging builds.
REACH_SLOW_MODEL_TIMEOUT_SECONDS = 420
# A faulted parent run ends FAILURE soon after an eviction or a drain (its worker reports it), and
# within a run-monitoring poll (ci/kind-values.yaml) after a kill.
PARENT_FAILS_TIMEOUT_SECONDS = 180


@dataclass(frozen=True)
class Reference:
    """An uninterrupted release: what green must hold after any faulted one (release_id aside)."""

    project: ReleaseProject
    run: Run
    green: dict[str, list[tuple]]
    job_assets: frozenset[str]


def reference_release(deployment: Deployment, project: ReleaseProject = EXAMPLE_RELEASE) -> Reference:
    """From empty release schemas, one uninterrupted release; its green is the expected content.
    Later releases are promoted over it, so the green reader always has an old release to see."""
    api = deployment.api
    reset_release_schemas(deployment.warehouse)
    run = run_release(api, project.job)
    deployment.runs_to_save.append(run.run_id)
    assert run.status == "SUCCESS", failure_messages(api, run.run_id)
    job_assets = api.job_asset_keys(project.job)
    assert set(api.materializations(run.run_id)) == job_assets
    green = schema_contents(deployment.warehouse, GREEN, project.marts)
    return Reference(project=project, run=run, green=green, job_assets=job_assets)


def launch_and_reach_slow_model(
    deployment: Deployment,
    project: ReleaseProject = EXAMPLE_RELEASE,
    pause_seconds: int = CHAOS_SLOW_MODEL_SECONDS,
    tags: dict[str, str] | None = None,
) -> str:
    """Launches a release (with `tags`) whose paused model sleeps `pause_seconds`; returns once the
    assets built before it are materialized and checked (the window a fault must land in)."""
    api = deployment.api
    parent_id = api.launch_run(project.job, {**(tags or {}), project.pause_tag: str(pause_seconds)})
    deployment.runs_to_save.append(parent_id)
    wait_paused_model_reached(api, parent_id, project.built_before_pause, project.paused_model)
    return parent_id


def wait_paused_model_reached(api: DagsterApi, run_id: str, built_before: frozenset[str], paused_model: str) -> None:
    """Returns once the run has materialized `built_before`, with their checks evaluated, and not
    `paused_model`, which sleeps before it builds: the window a fault must land in."""

    def probe() -> tuple[bool, object]:
        events = api.events(run_id)
        done = set(materialized(events))
        pending = checks_pending(events, done)
        run = api.run(run_id)
        assert not run.finished, f"the parent run ended {run.status} before the fault"
        return done >= built_before and not pending, (run.status, sorted(done), sorted(pending))

    wait_until(
        f"the parent run to build {sorted(built_before)} and reach {paused_model}",
        probe,
        REACH_SLOW_MODEL_TIMEOUT_SECONDS,
    )
    assert paused_model not in api.materializations(run_id), (
        f"{paused_model} built before the fault: the window was missed"
    )


def wait_one_retry_finished(api: DagsterApi, parent_id: str) -> list[Run]:
    """The run group of a failed parent once the one retry the retry daemon creates for it has
    finished: [parent, retry], as they ended."""
    retry = wait_retry(api, parent_id)
    group = wait_group_finished(api, parent_id)
    assert [run.run_id for run in group] == [parent_id, retry.run_id], [(run.run_id, run.status) for run in group]
    return group


def assert_group_exactly_once(deployment: Deployment, reference: Reference, group: list[Run]) -> None:
    """A release group that ended SUCCESS after any faults: each retry built exactly what the runs
    before it had not, every job asset was materialized exactly once across the group, and green
    holds the complete release, equal to the reference release's content, promoted once."""
    assert_retries_built_only_what_was_missing(deployment.api, group, reference.job_assets)
    root_id = group[0].run_id
    warehouse = deployment.warehouse
    assert schema_contents(warehouse, GREEN, reference.project.marts) == reference.green
    if reference.project.marts_stamped:
        assert green_release_ids(warehouse) == {mart: {root_id} for mart in reference.project.marts}
    assert [release for release, _ in release_log(warehouse)].count(root_id) == 1


def assert_retries_built_only_what_was_missing(api: DagsterApi, group: list[Run], assets: frozenset[str]) -> None:
    """A run group of `assets` that ended SUCCESS after any faults: each retry was a
    FROM_ASSET_FAILURE retry of the run before it selecting exactly what the runs before it had
    not done, and every asset was materialized exactly once across the group."""
    root_id = group[0].run_id
    assert [run.status for run in group] == ["FAILURE"] * (len(group) - 1) + ["SUCCESS"], [
        (run.run_id, run.status, run.tags.get("dagster/failure_reason")) for run in group
    ]
    done: set[str] = set()
    # Built, but a fault interrupted its dbt test: the test failed, so the asset is not done.
    test_interrupted: set[str] = set()
    for earlier, run in itertools.pairwise(group):
        events = api.events(earlier.run_id)
        failed = failed_blocking_checks(events)
        done |= set(materialized(events)) - failed
        test_interrupted |= failed
        assert run.tags["dagster/retry_strategy"] == "FROM_ASSET_FAILURE"
        assert run.tags["dagster/root_run_id"] == root_id
        assert run.tags["dagster/parent_run_id"] == earlier.run_id
        assert run.asset_selection == assets - done
    counts = materialization_counts(api, group)
    assert set(counts) == assets
    # Nothing built twice, but what a failed test sent back; a model in flight at a fault had not
    # reported, so once as well.
    assert {key: n for key, n in counts.items() if n > 1 and key not in test_interrupted} == {}


def assert_reader_saw_one_release_at_a_time(reader: GreenReader, root_id: str) -> None:
    """Scenario 10: one statement over the four marts never saw two releases at once."""
    assert reader.snapshots > 0 and not reader.errors, reader.summary()
    assert reader.mixes == [], reader.mixes[:5]
    assert reader.seen_ids[-1] == root_id, reader.summary()


def one_current_version_per_key(conninfo: str) -> None:
    """The example's sales snapshots after any faults: one current version per key, one per order."""
    for snapshot, key in SNAPSHOT_KEYS.items():
        duplicated = query(
            conninfo,
            f"select {key}, count(*) from {SNAPSHOT_SCHEMA}.{snapshot} where dbt_valid_to is null "
            f"group by {key} having count(*) > 1",
        )
        assert duplicated == [], f"{snapshot}: keys with more than one current version: {duplicated[:5]}"
    (orders,) = query(conninfo, "select count(*) from raw.orders")[0]
    (current,) = query(
        conninfo, f"select count(*) from {SNAPSHOT_SCHEMA}.{ORDERS_SNAPSHOT} where dbt_valid_to is null"
    )[0]
    assert current == orders
