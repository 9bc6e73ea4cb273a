"""Releases on a deployment, as the chaos scenarios and the benchmark drive them through the
GraphQL API: launching one, following a run and a run group (the parent and the retries the
retry daemon creates), reading why a run failed, and the green reader of scenario 10.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.dagster_api import DagsterApi, Run
from tests.support import GREEN, MARTS

# A release of size-1 data on a 2-core node takes a few minutes; a retry adds a pod start.
RELEASE_TIMEOUT_SECONDS = 900
RETRY_CREATED_TIMEOUT_SECONDS = 180
GREEN_READER_INTERVAL_SECONDS = 0.5
# kubectl port-forward can outlive the pod it forwards to, failing every connection: after this
# many failed reads in a row the reader has it restarted.
GREEN_READER_RESET_AFTER_ERRORS = 4
# stop() waits this long at most for a read made after it was called.
GREEN_READER_FINAL_READ_SECONDS = 60

# One statement: the release ids of all four green marts and of the release log, as one snapshot.
GREEN_SNAPSHOT_SQL = " union all ".join(
    [f"select distinct '{mart}' as source, release_id from {GREEN}.{mart}" for mart in MARTS]
    + [f"select distinct '_release_log' as source, release_id from {GREEN}._release_log"]
)


@dataclass(frozen=True)
class ReleaseProject:
    """What the release scenarios need to know of a deployed dbt project's blue/green release."""

    # The release job (dagster.yml's `release.job`).
    job: str
    # A run tag whose value (seconds) makes `paused_model` wait in a pre-hook before it builds, in
    # the first run of a release (dagster.yml's `vars_from_run_tags`).
    pause_tag: str
    paused_model: str
    # Assets the release has materialized, with their checks evaluated, while `paused_model` waits:
    # a fault that lands then meets a run with these done and the rest not.
    built_before_pause: frozenset[str]
    # The models promoted to green, and whether they carry the release id (dagster_blue_green's
    # release_id() macro in their SQL).
    marts: tuple[str, ...]
    marts_stamped: bool


PLANNED_CHECK = re.compile(r"intends to execute asset check (\S+) on asset \[\"([^\"]+)\"\]")
EVALUATED_CHECK = re.compile(r"^Asset check '([^']+)' on '([^']+)'")


def checks_pending(events: list[dict], assets: set[str]) -> dict[str, str]:
    """Asset checks the run planned on `assets` and has not evaluated yet, each with its asset. A
    fault that lands while dbt still tests a built model fails those checks, and FROM_ASSET_FAILURE
    then rebuilds the model: correct, but not the window the scenarios' exactly-once assertions
    describe."""
    messages = [event.get("message") or "" for event in events]
    planned = {
        m.group(1): m.group(2) for text in messages if (m := PLANNED_CHECK.search(text)) and m.group(2) in assets
    }
    evaluated = {m.group(1) for text in messages if (m := EVALUATED_CHECK.search(text))}
    return {check: asset for check, asset in planned.items() if check not in evaluated}


def wait_run_finished(api: DagsterApi, run_id: str, timeout: float, what: str) -> Run:
    def probe() -> tuple[bool, Run]:
        run = api.run(run_id)
        return run.finished, run

    return wait_until(f"{what} ({run_id}) to finish", probe, timeout)


def run_release(api: DagsterApi, job: str, tags: dict[str, str] | None = None) -> Run:
    run_id = api.launch_run(job, tags)
    return wait_run_finished(api, run_id, RELEASE_TIMEOUT_SECONDS, "an uninterrupted release")


def failure_messages(api: DagsterApi, run_id: str) -> str:
    """The run's error messages, each with the description a step's `dagster.Failure` gave."""
    texts = []
    for event in api.events(run_id):
        failure = event["__typename"] in {"ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent"}
        if failure and event.get("level") in {"ERROR", "CRITICAL"}:
            description = (event.get("failureMetadata") or {}).get("description")
            texts.append("\n".join(filter(None, [event.get("message"), description]))[:2000])
    return "\n".join(texts)


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


class GreenReader(threading.Thread):
    """Scenario 10: polls green in ONE statement while a release runs. A snapshot whose four marts
    carry more than one release id, or whose mart release is missing from `_release_log`, is a mix."""

    def __init__(self, conninfo: Callable[[], str], reset: Callable[[], None] | None = None) -> None:
        """`conninfo` is asked at each (re)connection: the port-forward behind it is restarted
        when the PostgreSQL pod it pointed at is gone; `reset` (stopping that port-forward) is
        called after GREEN_READER_RESET_AFTER_ERRORS failed reads in a row."""
        super().__init__(name="green-reader", daemon=True)
        self.conninfo = conninfo
        self.reset = reset
        self.snapshots = 0
        self.seen_ids: list[str] = []
        self.mixes: list[list[tuple[str, str]]] = []
        self.errors: Counter[str] = Counter()
        self.stop_event = threading.Event()

    def run(self) -> None:
        conn = None
        failed_in_a_row = 0
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
                failed_in_a_row = 0
            except (psycopg.Error, ConnectionError) as error:
                # A port-forward hiccup: counted and reported, never taken for a clean read.
                self.errors[type(error).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
                failed_in_a_row += 1
                if self.reset is not None and failed_in_a_row % GREEN_READER_RESET_AFTER_ERRORS == 0:
                    self.reset()
            time.sleep(GREEN_READER_INTERVAL_SECONDS)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        """Stops once a read begun after this call has succeeded (or after
        GREEN_READER_FINAL_READ_SECONDS): the last release seen is then the one green held when
        the caller stopped the reader, even if PostgreSQL was just replaced."""
        wanted = self.snapshots + 2
        deadline = time.monotonic() + GREEN_READER_FINAL_READ_SECONDS
        while self.is_alive() and self.snapshots < wanted and time.monotonic() < deadline:
            time.sleep(GREEN_READER_INTERVAL_SECONDS)
        self.stop_event.set()
        self.join(timeout=30)

    def summary(self) -> str:
        return f"{self.snapshots} snapshots, release ids in order {self.seen_ids}, errors {dict(self.errors)}"
