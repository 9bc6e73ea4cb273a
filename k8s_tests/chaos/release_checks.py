"""What the release scenarios share: the uninterrupted reference release, the slow-model window a
fault lands in, the green reader of scenario 10, and the exactly-once checks of a run group, read
through the GraphQL API.

The slow-model tag makes `int_orders_enriched` sleep before it builds, after the staging models
and `release/blue_prepared` are materialized: a fault injected then hits a run with some assets
done and others not.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from k8s_tests.chaos.dagster_api import DagsterApi, Run
from k8s_tests.chaos.fixtures import Deployment
from k8s_tests.cluster_fixtures import wait_until
from tests.support import GREEN, MARTS, green_release_ids, release_log, schema_contents

RELEASE_JOB = "release_job"
SLOW_MODEL_TAG = "analytics/slow_model_seconds"
SLOW_MODEL = "int_orders_enriched"
# Built before the slow model's pre-hook starts sleeping (tests/test_retries.py's DONE_BEFORE_KILL).
DONE_BEFORE_FAULT = {"release/blue_prepared", "stg_shop__orders"}
GREEN_PROMOTED = "release/green_promoted"
# A release of size-1 data on a 2-core node takes a few minutes; a retry adds a pod start.
RELEASE_TIMEOUT_SECONDS = 900
GREEN_READER_INTERVAL_SECONDS = 0.5
# Only the window a fault must land in: the test sees the models before it built within seconds.
SLOW_MODEL_SECONDS = 30
# The parent reaches the slow model after its pod starts and staging builds.
REACH_SLOW_MODEL_TIMEOUT_SECONDS = 420
RETRY_CREATED_TIMEOUT_SECONDS = 180

# One statement: the release ids of all four green marts and of the release log, as one snapshot.
GREEN_SNAPSHOT_SQL = " union all ".join(
    [f"select distinct '{mart}' as source, release_id from {GREEN}.{mart}" for mart in MARTS]
    + [f"select distinct '_release_log' as source, release_id from {GREEN}._release_log"]
)


@dataclass(frozen=True)
class Reference:
    """An uninterrupted release: what green must hold after any faulted one (release_id aside)."""

    run: Run
    green: dict[str, list[tuple]]
    job_assets: frozenset[str]


def reset_release_schemas(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        for schema in ("green", "blue", "blue_swap"):
            conn.execute(f"drop schema if exists {schema} cascade")


def reference_release(deployment: Deployment) -> Reference:
    """From empty release schemas, one uninterrupted release; its green is the expected content.
    Later releases are promoted over it, so the green reader always has an old release to see."""
    api = deployment.api
    reset_release_schemas(deployment.warehouse)
    run = run_release(api)
    deployment.runs_to_save.append(run.run_id)
    assert run.status == "SUCCESS", failure_messages(api, run.run_id)
    job_assets = api.job_asset_keys(RELEASE_JOB)
    assert set(api.materializations(run.run_id)) == job_assets
    return Reference(run=run, green=schema_contents(deployment.warehouse, GREEN), job_assets=job_assets)


def wait_run_finished(api: DagsterApi, run_id: str, timeout: float, what: str) -> Run:
    def probe() -> tuple[bool, Run]:
        run = api.run(run_id)
        return run.finished, run

    return wait_until(f"{what} ({run_id}) to finish", probe, timeout)


def run_release(api: DagsterApi, tags: dict[str, str] | None = None) -> Run:
    run_id = api.launch_run(RELEASE_JOB, tags)
    return wait_run_finished(api, run_id, RELEASE_TIMEOUT_SECONDS, "an uninterrupted release")


def launch_and_reach_slow_model(deployment: Deployment) -> str:
    """Launches a release whose slow model sleeps SLOW_MODEL_SECONDS; returns once the assets before
    it are materialized (the window a fault must land in)."""
    api = deployment.api
    parent_id = api.launch_run(RELEASE_JOB, {SLOW_MODEL_TAG: str(SLOW_MODEL_SECONDS)})
    deployment.runs_to_save.append(parent_id)

    def probe() -> tuple[bool, object]:
        done = set(api.materializations(parent_id))
        run = api.run(parent_id)
        assert not run.finished, f"the parent run ended {run.status} before the fault"
        return done >= DONE_BEFORE_FAULT, (run.status, sorted(done))

    wait_until("the parent run to build staging and reach the slow model", probe, REACH_SLOW_MODEL_TIMEOUT_SECONDS)
    assert SLOW_MODEL not in api.materializations(parent_id), (
        f"{SLOW_MODEL} built before the fault: the window was missed"
    )
    return parent_id


def failure_messages(api: DagsterApi, run_id: str) -> str:
    return "\n".join(
        event.get("message", "")[:2000]
        for event in api.events(run_id)
        if event["__typename"] in {"ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent"}
        and event.get("level") in {"ERROR", "CRITICAL"}
    )


class GreenReader(threading.Thread):
    """Scenario 10: polls green in ONE statement while a release runs. A snapshot whose four marts
    carry more than one release id, or whose mart release is missing from `_release_log`, is a mix."""

    def __init__(self, conninfo: Callable[[], str]) -> None:
        """`conninfo` is asked at each (re)connection: the port-forward behind it is restarted
        when the PostgreSQL pod it pointed at is gone."""
        super().__init__(name="green-reader", daemon=True)
        self.conninfo = conninfo
        self.snapshots = 0
        self.seen_ids: list[str] = []
        self.mixes: list[list[tuple[str, str]]] = []
        self.errors: Counter[str] = Counter()
        self.stop_event = threading.Event()

    def run(self) -> None:
        conn = None
        while not self.stop_event.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.conninfo(), autocommit=True)
                rows = conn.execute(GREEN_SNAPSHOT_SQL).fetchall()
                self.snapshots += 1
                mart_rows = [(source, release) for source, release in rows if source != "_release_log"]
                logged = {release for source, release in rows if source == "_release_log"}
                mart_ids = {release for _, release in mart_rows}
                if len(mart_ids) != 1 or {s for s, _ in mart_rows} != set(MARTS) or not mart_ids <= logged:
                    self.mixes.append(sorted(rows))
                for release in sorted(mart_ids):
                    if release not in self.seen_ids:
                        self.seen_ids.append(release)
            except (psycopg.Error, ConnectionError) as error:
                # A port-forward hiccup: counted and reported, never taken for a clean read.
                self.errors[type(error).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(GREEN_READER_INTERVAL_SECONDS)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)

    def summary(self) -> str:
        return f"{self.snapshots} snapshots, release ids in order {self.seen_ids}, errors {dict(self.errors)}"


def materialization_counts(api: DagsterApi, runs: list[Run]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for run in runs:
        counts.update(api.materializations(run.run_id))
    return counts


def wait_retry(api: DagsterApi, parent_id: str) -> Run:
    """The one retry run the retry daemon creates for a failed parent."""

    def created() -> tuple[bool, object]:
        children = api.children(parent_id)
        return bool(children), children or api.run(parent_id).tags

    (retry,) = wait_until(
        f"the retry daemon to create one retry of {parent_id}", created, RETRY_CREATED_TIMEOUT_SECONDS
    )
    return retry


def wait_group_finished(api: DagsterApi, root_id: str, timeout: float = 2 * RELEASE_TIMEOUT_SECONDS) -> list[Run]:
    """Follows a run group until its newest run has finished and, if that run failed, the retry
    daemon has decided (dagster/will_retry false, or a retry that is followed in turn)."""

    def probe() -> tuple[bool, object]:
        group = api.run_group(root_id)
        last = group[-1]
        if not last.finished:
            return False, [(run.run_id, run.status) for run in group]
        if last.status == "SUCCESS" or last.tags.get("dagster/will_retry") == "false":
            return True, group
        return False, [(run.run_id, run.status, run.tags.get("dagster/will_retry")) for run in group]

    return wait_until(f"the run group of {root_id} to end", probe, timeout, interval=3)


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
    api = deployment.api
    root_id = group[0].run_id
    assert [run.status for run in group] == ["FAILURE"] * (len(group) - 1) + ["SUCCESS"], [
        (run.run_id, run.status, run.tags.get("dagster/failure_reason")) for run in group
    ]
    done: set[str] = set()
    for earlier, run in itertools.pairwise(group):
        done |= set(api.materializations(earlier.run_id))
        assert run.tags["dagster/retry_strategy"] == "FROM_ASSET_FAILURE"
        assert run.tags["dagster/root_run_id"] == root_id
        assert run.tags["dagster/parent_run_id"] == earlier.run_id
        assert run.asset_selection == reference.job_assets - done
    counts = materialization_counts(api, group)
    assert set(counts) == reference.job_assets
    # Nothing built twice; a model in flight at a fault had not reported, so once as well.
    assert {key: n for key, n in counts.items() if n > 1} == {}

    warehouse = deployment.warehouse
    assert schema_contents(warehouse, GREEN) == reference.green
    assert green_release_ids(warehouse) == {mart: {root_id} for mart in MARTS}
    assert [release for release, _ in release_log(warehouse)].count(root_id) == 1


def assert_reader_saw_one_release_at_a_time(reader: GreenReader, root_id: str) -> None:
    """Scenario 10: one statement over the four marts never saw two releases at once."""
    assert reader.snapshots > 0 and not reader.errors, reader.summary()
    assert reader.mixes == [], reader.mixes[:5]
    assert reader.seen_ids[-1] == root_id, reader.summary()
