"""A small client of the Dagster webserver's GraphQL API: what the chaos scenarios and the
benchmark ask Dagster.

Dagster's own state (runs, tags, events, pools) is read only through this API, never from the
database behind it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME

REPOSITORY_NAME = "__repository__"
FINISHED_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
UNFINISHED_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
REQUEST_TIMEOUT_SECONDS = 30
# Long enough for a replaced webserver pod to start and pass its readiness probe.
UNREACHABLE_TIMEOUT_SECONDS = 240
REQUEST_RETRY_SECONDS = 3
# A launch is not idempotent: each carries this tag with an id of its own, and one whose answer
# was lost (a timeout, a dropped port-forward) is looked up by it before it is sent again.
LAUNCH_ID_TAG = "k8s-tests/launch-id"
# How long a launch whose answer timed out is looked for before it is sent again: the webserver
# may still be working on it (a stalled 2-core node).
LAUNCH_LOOKUP_SECONDS = 60
EVENTS_PAGE_SIZE = 500
STEP_BOUNDARY_EVENTS = {"ExecutionStepStartEvent", "ExecutionStepSuccessEvent", "ExecutionStepFailureEvent"}

LAUNCH_RUN_MUTATION = """mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
  ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } }
} }"""

_RUN_FIELDS = """
  runId status jobName creationTime startTime endTime
  tags { key value }
  assetSelection { path }
"""


class GraphQLError(RuntimeError):
    pass


class AnswerLost(GraphQLError):
    """A request that may have reached the webserver got no answer (query(..., resend=False))."""

    def __init__(self, problem: str, timed_out: bool) -> None:
        super().__init__(problem)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Run:
    run_id: str
    status: str
    job_name: str
    tags: dict[str, str]
    asset_selection: frozenset[str] | None
    creation_time: float | None
    start_time: float | None
    end_time: float | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @classmethod
    def from_graphql(cls, data: dict[str, Any]) -> Run:
        selection = data.get("assetSelection")
        return cls(
            run_id=data["runId"],
            status=data["status"],
            job_name=data["jobName"],
            tags={tag["key"]: tag["value"] for tag in data["tags"]},
            asset_selection=None if selection is None else frozenset(asset_key(a["path"]) for a in selection),
            creation_time=data.get("creationTime"),
            start_time=data.get("startTime"),
            end_time=data.get("endTime"),
        )


def asset_key(path: list[str]) -> str:
    return "/".join(path)


def materialized(events: list[dict[str, Any]]) -> Counter[str]:
    """How many times each asset was materialized, in events of `DagsterApi.events`."""
    return Counter(
        asset_key(event["assetKey"]["path"]) for event in events if event["__typename"] == "MaterializationEvent"
    )


def materialized_partitions(events: list[dict[str, Any]]) -> Counter[str]:
    """How many times each partition was materialized, in events of `DagsterApi.events`: a run of
    a partition range logs one materialization per partition of it."""
    return Counter(
        event["partition"]
        for event in events
        if event["__typename"] == "MaterializationEvent" and event["partition"] is not None
    )


def failed_blocking_checks(events: list[dict[str, Any]]) -> set[str]:
    """Assets with a check of severity ERROR that did not pass, in events of `DagsterApi.events`:
    dagster-dbt makes a dbt test of severity error a blocking check, and FROM_ASSET_FAILURE builds
    an asset whose blocking check failed again."""
    return {
        asset_key(event["evaluation"]["assetKey"]["path"])
        for event in events
        if event["__typename"] == "AssetCheckEvaluationEvent"
        and not event["evaluation"]["success"]
        and event["evaluation"]["severity"] == "ERROR"
    }


class DagsterApi:
    """GraphQL over HTTP against one webserver (a port-forward), for one code location."""

    def __init__(self, url: Callable[[], str], location: str) -> None:
        """`url` is asked before every attempt: the port-forward behind it is restarted when the
        webserver pod it pointed at is gone (ConnectionError while none can be made)."""
        self.url = url
        self.location = location
        self.session = requests.Session()

    def query(self, query: str, resend: bool = True, **variables: Any) -> dict[str, Any]:
        """The data of `query`. Requests without an answer are sent again until
        UNREACHABLE_TIMEOUT_SECONDS, except, with `resend=False` (a mutation that must not be done
        twice), one that may have reached the webserver: AnswerLost."""
        deadline = time.monotonic() + UNREACHABLE_TIMEOUT_SECONDS
        while True:
            try:
                response = self.session.post(
                    self.url().rstrip("/") + "/graphql",
                    json={"query": query, "variables": variables},
                    timeout=REQUEST_TIMEOUT_SECONDS,
                )
                if response.status_code < 500:
                    break
                problem = f"HTTP {response.status_code}"
            except (requests.ConnectionError, requests.Timeout, ConnectionError) as error:
                problem = repr(error)
                # Only a connection never made (refused, or not made in time) surely sent nothing.
                never_sent = isinstance(error, requests.ConnectTimeout) or "refused" in problem.lower()
                if not resend and not never_sent:
                    raise AnswerLost(problem, timed_out=isinstance(error, requests.Timeout)) from error
            # A busy 2-core node stalls the webserver for a moment, and a chaos scenario may be
            # replacing its pod: retried until the deadline, then raised with what was seen.
            if time.monotonic() >= deadline:
                raise GraphQLError(f"webserver unreachable for {UNREACHABLE_TIMEOUT_SECONDS}s: {problem}")
            time.sleep(REQUEST_RETRY_SECONDS)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(json.dumps(body["errors"])[:2000])
        return body["data"]

    def _job_selector(self, job: str) -> dict[str, str]:
        return {"repositoryLocationName": self.location, "repositoryName": REPOSITORY_NAME, "jobName": job}

    # --- health ---------------------------------------------------------------------------------

    def version(self) -> str:
        return self.query("{ version }")["version"]

    def location_status(self) -> str:
        """'RepositoryLocation' once the code location is loaded, else the error type or 'absent'."""
        data = self.query(
            "{ workspaceOrError { __typename ... on Workspace { locationEntries {"
            " name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        for entry in data["workspaceOrError"].get("locationEntries", []):
            if entry["name"] == self.location:
                located = entry["locationOrLoadError"] or {}
                return located.get("__typename") or entry["loadStatus"]
        return "absent"

    def job_names(self) -> frozenset[str]:
        """The jobs of the location as the webserver has it loaded."""
        data = self.query(
            "query ($selector: RepositorySelector!) { repositoryOrError(repositorySelector: $selector) {"
            " __typename ... on Repository { jobs { name } } ... on PythonError { message } } }",
            selector={"repositoryLocationName": self.location, "repositoryName": REPOSITORY_NAME},
        )["repositoryOrError"]
        if data["__typename"] != "Repository":
            raise GraphQLError(f"repository of {self.location}: {data}")
        return frozenset(job["name"] for job in data["jobs"])

    # --- runs -----------------------------------------------------------------------------------

    def launch_run(self, job: str, tags: dict[str, str] | None = None, assets: list[str] | None = None) -> str:
        """Launches `job`; with `assets` (keys as user strings), that subset of it, as the UI's
        "Materialize selected" does with IMPLICIT_ASSET_JOB_NAME. Launches it once: a launch whose
        answer was lost is looked up by its LAUNCH_ID_TAG before it is sent again, and a launch
        found twice is an error."""
        selector: dict[str, Any] = self._job_selector(job)
        if assets:
            selector["assetSelection"] = [{"path": key.split("/")} for key in assets]
        launch_id = uuid.uuid4().hex
        params = {
            "selector": selector,
            "runConfigData": {},
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in {**(tags or {}), LAUNCH_ID_TAG: launch_id}.items()]
            },
        }
        deadline = time.monotonic() + UNREACHABLE_TIMEOUT_SECONDS
        sent_again = False
        while True:
            try:
                data = self.query(LAUNCH_RUN_MUTATION, resend=False, params=params)["launchRun"]
                break
            except AnswerLost as lost:
                run_id = self._run_launched_as(launch_id, LAUNCH_LOOKUP_SECONDS if lost.timed_out else 0)
                if run_id:
                    return run_id
                if time.monotonic() >= deadline:
                    problem = f"launching {job}: no answer for {UNREACHABLE_TIMEOUT_SECONDS}s: {lost}"
                    raise GraphQLError(problem) from lost
                print(f"[api] launch of {job} ({launch_id}) got no answer ({lost}) and is not there: sent again")
                sent_again = True
                time.sleep(REQUEST_RETRY_SECONDS)
        if data["__typename"] != "LaunchRunSuccess":
            raise GraphQLError(f"launching {job} failed: {data}")
        if sent_again:
            self._run_launched_as(launch_id, 0)  # raises if the lost launch was done too
        return data["run"]["runId"]

    def _run_launched_as(self, launch_id: str, wait_seconds: float) -> str | None:
        """The run launched with `launch_id` (not its retries, which copy its tags), looked for
        during `wait_seconds`; None if there is none. Raises when there are two."""
        deadline = time.monotonic() + wait_seconds
        while True:
            runs = [
                run for run in self.runs_with_tag(LAUNCH_ID_TAG, launch_id) if "dagster/parent_run_id" not in run.tags
            ]
            if len(runs) > 1:
                raise GraphQLError(f"launch {launch_id} was done {len(runs)} times: {[run.run_id for run in runs]}")
            if runs or time.monotonic() >= deadline:
                return runs[0].run_id if runs else None
            time.sleep(REQUEST_RETRY_SECONDS)

    def launch_backfill(self, partitions: list[str], assets: list[str], tags: dict[str, str] | None = None) -> str:
        """A backfill of `partitions` of `assets`, as the UI's dialog launches one: the runs their
        backfill policies ask for, each tagged with `tags`."""
        params = {
            "partitionNames": partitions,
            "fromFailure": False,
            "assetSelection": [{"path": key.split("/")} for key in assets],
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        }
        data = self.query(
            """mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
                 __typename
                 ... on LaunchBackfillSuccess { backfillId }
                 ... on Error { message }
               } }""",
            params=params,
        )["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(f"launching a backfill of {assets} failed: {data}")
        return data["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        data = self.query(
            """query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
                 __typename ... on PartitionBackfill { status } ... on Error { message } } }""",
            id=backfill_id,
        )["partitionBackfillOrError"]
        if data["__typename"] != "PartitionBackfill":
            raise GraphQLError(f"backfill {backfill_id}: {data}")
        return data["status"]

    def run(self, run_id: str) -> Run:
        data = self.query(
            f"query ($id: ID!) {{ runOrError(runId: $id) {{ __typename ... on Run {{ {_RUN_FIELDS} }} }} }}",
            id=run_id,
        )["runOrError"]
        if data["__typename"] != "Run":
            raise GraphQLError(f"run {run_id}: {data['__typename']}")
        return Run.from_graphql(data)

    def runs(self, runs_filter: dict[str, Any]) -> list[Run]:
        """Runs matching a GraphQL RunsFilter."""
        data = self.query(
            f"""query ($filter: RunsFilter) {{ runsOrError(filter: $filter) {{
                  __typename ... on Runs {{ results {{ {_RUN_FIELDS} }} }} }} }}""",
            filter=runs_filter,
        )["runsOrError"]
        return [Run.from_graphql(run) for run in data["results"]]

    def runs_with_tag(self, key: str, value: str) -> list[Run]:
        return self.runs({"tags": [{"key": key, "value": value}]})

    def unfinished_runs(self) -> list[Run]:
        """Every run of the instance still queued, starting, started or canceling."""
        return self.runs({"statuses": list(UNFINISHED_STATUSES)})

    def children(self, run_id: str) -> list[Run]:
        """Retries launched from `run_id` (runs whose dagster/parent_run_id is it)."""
        return self.runs_with_tag("dagster/parent_run_id", run_id)

    def run_group(self, run_id: str) -> list[Run]:
        """The root run and every retry of it, oldest first."""
        data = self.query(
            f"""query ($id: ID!) {{ runGroupOrError(runId: $id) {{
                  __typename ... on RunGroup {{ rootRunId runs {{ {_RUN_FIELDS} }} }} }} }}""",
            id=run_id,
        )["runGroupOrError"]
        if data["__typename"] != "RunGroup":
            raise GraphQLError(f"run group of {run_id}: {data}")
        return sorted((Run.from_graphql(run) for run in data["runs"]), key=lambda r: r.creation_time or 0)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of a run (logsForRun, paged)."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            data = self.query(
                """query ($id: ID!, $cursor: String, $limit: Int) {
                     logsForRun(runId: $id, afterCursor: $cursor, limit: $limit) {
                       __typename
                       ... on EventConnection { cursor hasMore events {
                         __typename
                         ... on MessageEvent { message timestamp level stepKey }
                         ... on MaterializationEvent { assetKey { path } partition }
                         ... on StepEvent { stepKey }
                         ... on ExecutionStepFailureEvent { failureMetadata { description } }
                         ... on AssetCheckEvaluationEvent { evaluation { assetKey { path } success severity } }
                       } }
                       ... on PythonError { message }
                     } }""",
                id=run_id,
                cursor=cursor,
                limit=EVENTS_PAGE_SIZE,
            )["logsForRun"]
            if data["__typename"] != "EventConnection":
                raise GraphQLError(f"events of {run_id}: {data}")
            events.extend(data["events"])
            cursor = data["cursor"]
            if not data["hasMore"]:
                return events

    def materialization_count(self, run_id: str) -> int:
        """How many materializations a run has logged so far: a count the event log storage keeps,
        cheap to poll even when the run's event log is long."""
        data = self.query(
            """query ($id: ID!) { runOrError(runId: $id) { __typename
                 ... on Run { stats { __typename ... on RunStatsSnapshot { materializations } } } } }""",
            id=run_id,
        )["runOrError"]
        if data["__typename"] != "Run" or data["stats"]["__typename"] != "RunStatsSnapshot":
            raise GraphQLError(f"stats of run {run_id}: {data}")
        return data["stats"]["materializations"]

    def materializations(self, run_id: str) -> Counter[str]:
        """How many times each asset was materialized by a run."""
        return materialized(self.events(run_id))

    def step_interval(self, run_id: str, step_key: str) -> tuple[float, float]:
        """When a step of a run started and ended (success or failure), in epoch seconds."""
        times = {
            event["__typename"]: int(event["timestamp"]) / 1000
            for event in self.events(run_id)
            if event.get("stepKey") == step_key and event["__typename"] in STEP_BOUNDARY_EVENTS
        }
        start = times.get("ExecutionStepStartEvent")
        end = times.get("ExecutionStepSuccessEvent", times.get("ExecutionStepFailureEvent"))
        if start is None or end is None:
            raise GraphQLError(f"run {run_id}: step {step_key} has no start and end events ({times})")
        return start, end

    def job_asset_keys(self, job: str) -> frozenset[str]:
        data = self.query(
            "query ($job: PipelineSelector) { assetNodes(pipeline: $job) { assetKey { path } } }",
            job={
                "repositoryLocationName": self.location,
                "repositoryName": REPOSITORY_NAME,
                "pipelineName": job,
            },
        )
        return frozenset(asset_key(node["assetKey"]["path"]) for node in data["assetNodes"])

    def unpartitioned_asset_keys(self) -> frozenset[str]:
        """Every asset of the location that can be materialized and has no partitions: what the
        UI's "Materialize all" launches through IMPLICIT_ASSET_JOB_NAME on such a graph."""
        data = self.query(
            "query ($job: PipelineSelector) { assetNodes(pipeline: $job) {"
            " assetKey { path } isMaterializable isPartitioned } }",
            job={
                "repositoryLocationName": self.location,
                "repositoryName": REPOSITORY_NAME,
                "pipelineName": IMPLICIT_ASSET_JOB_NAME,
            },
        )
        return frozenset(
            asset_key(node["assetKey"]["path"])
            for node in data["assetNodes"]
            if node["isMaterializable"] and not node["isPartitioned"]
        )

    def pool_slots_in_use(self, pool: str) -> dict[str, Any]:
        return self.query(
            """query ($pool: String) { instance { concurrencyLimit(concurrencyKey: $pool) {
                 concurrencyKey slotCount activeSlotCount activeRunIds claimedSlots { runId stepKey }
                 pendingSteps { runId stepKey } } } }""",
            pool=pool,
        )["instance"]["concurrencyLimit"]

    def pool_slots_in_use_all(self) -> dict[str, int]:
        """Slots in use per pool, for every pool the instance knows."""
        data = self.query("{ instance { concurrencyLimits { concurrencyKey activeSlotCount } } }")
        return {pool["concurrencyKey"]: pool["activeSlotCount"] for pool in data["instance"]["concurrencyLimits"]}

    def save_event_log(self, run_id: str, path: Path) -> None:
        lines = []
        for event in self.events(run_id):
            lines.append(json.dumps(event, sort_keys=True))
        path.write_text("\n".join(lines) + "\n")
