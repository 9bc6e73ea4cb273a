"""The benchmark's cases (issue 6). Each repetition of a case adds one sample per metric.

Faults are the chaos suite's own (`evict`, `kill_without_grace` of k8s_tests/harness/faults.py),
landing at the same point of a release: `int_orders_enriched` sleeps (the slow-model tag) after
the staging models and `release/blue_prepared` are materialized. Times come from Dagster's event
log and run records, and from Kubernetes for the run pod's container start; the kind node shares
the host's clock.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from example_extras.definitions import RawDataConfig
from example_extras.raw_data import generate, load
from kubernetes import client

from dagster_code.retries import DEFAULT_RETRY_STRATEGY, RETRY_STRATEGIES
from k8s_tests.bench import synthetic_project
from k8s_tests.bench.deployment import ProjectImage, build_project_image, restart_component, use_project_image
from k8s_tests.bench.report import Results
from k8s_tests.harness.cluster import read_versions, wait_until
from k8s_tests.harness.dagster_api import DagsterApi, Run, materialized
from k8s_tests.harness.deployment import Deployment, component_name, wait_location_loaded
from k8s_tests.harness.example import (
    EXAMPLE_RELEASE,
    MODELS_STEP,
    RELEASE_JOB,
    SALES_JOB,
    SALES_STEP,
    SLOW_MODEL,
    SLOW_MODEL_TAG,
)
from k8s_tests.harness.faults import evict, kill_without_grace, running_run_pod
from k8s_tests.harness.release import (
    RELEASE_TIMEOUT_SECONDS,
    checks_pending,
    failure_messages,
    wait_retry,
    wait_run_finished,
)

# Case 3: synthetic dbt projects of these many models, raw data of these sizes (the default first).
GROWTH_MODELS = (20, 100, 400)
GROWTH_MODELS_QUICK = (20,)
GROWTH_DATA_SIZES = (RawDataConfig().size, 50)
GROWTH_DATA_SIZES_QUICK = (RawDataConfig().size,)
# The slow model must outlast the early synthetic models (built beside it on dbt's other threads);
# the fault lands as soon as they are built, and retries do not sleep.
GROWTH_SLOW_MODEL_SECONDS = 1200
GROWTH_REACH_TIMEOUT_SECONDS = 1500
# Long enough for the fault to land while the slow model sleeps, short enough to keep runs short.
BENCH_SLOW_MODEL_SECONDS = 30
RETRY_STRATEGY_TAG = "dagster/retry_strategy"
DBT_STEP = MODELS_STEP
# Dagster's own run-monitoring poll interval when the instance sets none.
DAGSTER_DEFAULT_POLL_SECONDS = 120
# Case 5 runs the sales snapshots, whose pool has a limit of 1.
SNAPSHOT_JOB = SALES_JOB
SNAPSHOT_STEP = SALES_STEP
SNAPSHOT_RUNS = 4
SNAPSHOT_RUNS_QUICK = 3
# Generous: the chaos suite runs on another cluster of the same two cores.
BENCH_REACH_SLOW_MODEL_TIMEOUT_SECONDS = 600
# A worker killed without grace is noticed only at the next run-monitoring poll (up to 120 s).
BENCH_PARENT_FAILS_TIMEOUT_SECONDS = 600
PROGRESS_SECONDS = 30
SNAPSHOT_RUNS_TIMEOUT_SECONDS = 900
CODE_LOCATION_RESTART_TIMEOUT_SECONDS = 600
CODE_SERVER_STARTED_LINE = "Started Dagster code server for module"
# Engine events the run launcher and the run worker write, in order.
JOB_CREATED_MESSAGE = "Kubernetes run worker job created"
WORKER_STARTED_MESSAGE = "Started process for run"

Fault = Callable[[Deployment, client.V1Pod], None]
FAULTS: dict[str, Fault] = {"eviction": evict, "hard kill": kill_without_grace}


@dataclass(frozen=True)
class FaultedRelease:
    parent: Run
    retry: Run
    fault_at: float


# --- Reading runs ------------------------------------------------------------------------------


def event_time(
    events: list[dict[str, Any]], typename: str, step: str | None = None, message: str | None = None
) -> float:
    """Seconds since the epoch of the first event of that type (and step, and message prefix)."""
    for event in events:
        if (
            event["__typename"] == typename
            and (step is None or event.get("stepKey") == step)
            and (message is None or message in (event.get("message") or ""))
        ):
            return int(event["timestamp"]) / 1000
    raise LookupError(f"no {typename} event (step {step}, message {message!r}) in the run's event log")


def run_pod_started_at(deployment: Deployment, run_id: str) -> float:
    """When the run worker's container started (running or since finished)."""
    for pod in deployment.run_pods(run_id):
        for status in pod.status.container_statuses or []:
            state = status.state.running or status.state.terminated
            if state is not None and state.started_at is not None:
                return state.started_at.timestamp()
    raise LookupError(f"no started container in the run pods of {run_id} (Job dagster-run-{run_id})")


def wait_success(api: DagsterApi, run_id: str, what: str, timeout: float = RELEASE_TIMEOUT_SECONDS) -> Run:
    run = wait_run_finished(api, run_id, timeout, what)
    if run.status != "SUCCESS":
        raise RuntimeError(f"{what} {run_id} ended {run.status}:\n{failure_messages(api, run_id)}")
    return run


def release(deployment: Deployment, results: Results) -> Run:
    """An uninterrupted release with the same slow model as the faulted ones; its launch overhead
    is recorded (case 4)."""
    api = deployment.api
    start = time.monotonic()
    run = wait_success(
        api, api.launch_run(RELEASE_JOB, {SLOW_MODEL_TAG: str(BENCH_SLOW_MODEL_SECONDS)}), "an uninterrupted release"
    )
    print(f"uninterrupted release {run.run_id}: {time.monotonic() - start:.0f}s", flush=True)
    record_launch_overhead(deployment, run, results)
    return run


def faulted_release(
    deployment: Deployment,
    fault: Fault,
    strategy: str,
    done_before_fault: frozenset[str] = EXAMPLE_RELEASE.built_before_pause,
    slow_model_seconds: int = BENCH_SLOW_MODEL_SECONDS,
    reach_timeout: float = BENCH_REACH_SLOW_MODEL_TIMEOUT_SECONDS,
) -> FaultedRelease:
    """A release whose run pod gets `fault` while the slow model sleeps, once `done_before_fault`
    are materialized and the checks planned on them evaluated (else the checks fail and the retry
    rightly rebuilds their models), retried with `strategy` (a launch-time tag, which overrides the
    job's tag: checked on the retry)."""
    api = deployment.api
    start = time.monotonic()
    parent_id = api.launch_run(RELEASE_JOB, {SLOW_MODEL_TAG: str(slow_model_seconds), RETRY_STRATEGY_TAG: strategy})

    last_progress = time.monotonic()

    def reached_slow_model() -> tuple[bool, object]:
        nonlocal last_progress
        events = api.events(parent_id)
        done = set(materialized(events))
        pending = checks_pending(events, done)
        run = api.run(parent_id)
        if run.finished:
            raise RuntimeError(f"release {parent_id} ended {run.status} before the fault")
        state = (
            run.status,
            f"{len(done & done_before_fault)} of {len(done_before_fault)} assets before the fault",
            f"{len(pending)} checks pending",
        )
        if time.monotonic() - last_progress > PROGRESS_SECONDS:
            print(f"release {parent_id}: {state}", flush=True)
            last_progress = time.monotonic()
        return done >= done_before_fault and not pending, state

    wait_until(f"release {parent_id} to reach the slow model", reached_slow_model, reach_timeout)
    if SLOW_MODEL in api.materializations(parent_id):
        raise RuntimeError(f"{SLOW_MODEL} was built before the fault: raise BENCH_SLOW_MODEL_SECONDS")
    pod = running_run_pod(deployment, parent_id)
    fault_at = time.time()
    fault(deployment, pod)

    parent = wait_run_finished(api, parent_id, BENCH_PARENT_FAILS_TIMEOUT_SECONDS, "the faulted release")
    if parent.status != "FAILURE":
        raise RuntimeError(f"the faulted release {parent_id} ended {parent.status}, not FAILURE")

    retry = wait_success(api, wait_retry(api, parent_id).run_id, "the retry")
    if retry.tags.get(RETRY_STRATEGY_TAG) != strategy:
        raise RuntimeError(
            f"retry {retry.run_id} has {RETRY_STRATEGY_TAG}={retry.tags.get(RETRY_STRATEGY_TAG)}, "
            f"launched with {strategy}"
        )
    print(f"faulted release {parent_id} ({strategy}) and its retry: {time.monotonic() - start:.0f}s", flush=True)
    return FaultedRelease(parent=parent, retry=retry, fault_at=fault_at)


# --- Cases -------------------------------------------------------------------------------------


def retry_strategies(deployment: Deployment, results: Results, poll_label: str) -> None:
    """Case 1: the same eviction under each retry strategy, against an uninterrupted release.
    The FROM_ASSET_FAILURE one also gives case 2's eviction latency at this poll setting."""
    case = "1 re-executed work"
    api = deployment.api
    uninterrupted = release(deployment, results)
    uninterrupted_seconds = uninterrupted.end_time - uninterrupted.creation_time
    results.add(case, "uninterrupted release wall time", "s", uninterrupted_seconds)
    for strategy in RETRY_STRATEGIES:
        faulted = faulted_release(deployment, evict, strategy)
        done_before = set(api.materializations(faulted.parent.run_id))
        redone = set(api.materializations(faulted.retry.run_id)) & done_before
        results.add(case, "assets materialized before the eviction", "assets", len(done_before))
        results.add(
            case, f"{strategy}: re-executed / materialized before eviction", "ratio", len(redone) / len(done_before)
        )
        group_seconds = faulted.retry.end_time - faulted.parent.creation_time
        results.add(
            case, f"{strategy}: group wall time / uninterrupted", "ratio", group_seconds / uninterrupted_seconds
        )
        record_launch_overhead(deployment, faulted.retry, results)
        if strategy == DEFAULT_RETRY_STRATEGY:
            record_recovery_latency(deployment, faulted, "eviction", poll_label, results)


def recovery_latency(deployment: Deployment, results: Results, poll_label: str, faults: list[str]) -> None:
    """Case 2: fault to parent failed, retry created, retry pod running, group SUCCESS."""
    for fault_name in faults:
        faulted = faulted_release(deployment, FAULTS[fault_name], DEFAULT_RETRY_STRATEGY)
        record_recovery_latency(deployment, faulted, fault_name, poll_label, results)
        record_launch_overhead(deployment, faulted.retry, results)


def record_recovery_latency(
    deployment: Deployment, faulted: FaultedRelease, fault_name: str, poll_label: str, results: Results
) -> None:
    case = f"2 recovery latency, {poll_label}"
    since_fault = {
        "parent marked failed": faulted.parent.end_time,
        "retry run created": faulted.retry.creation_time,
        "retry pod running": run_pod_started_at(deployment, faulted.retry.run_id),
        "group SUCCESS": faulted.retry.end_time,
    }
    for milestone, at in since_fault.items():
        results.add(case, f"{fault_name} -> {milestone}", "s", at - faulted.fault_at)


def record_launch_overhead(
    deployment: Deployment, run: Run, results: Results, case: str = "4 launch overhead", prefix: str = ""
) -> None:
    """Case 4, per successful release run: where the time goes from queued to dbt's first model
    (metrics named `prefix` + milestones, under `case`)."""
    events = deployment.api.events(run.run_id)
    milestones = [
        ("queued", event_time(events, "RunEnqueuedEvent")),
        ("dequeued", event_time(events, "RunStartingEvent")),
        ("Job created", event_time(events, "EngineEvent", message=JOB_CREATED_MESSAGE)),
        ("run pod's container started", run_pod_started_at(deployment, run.run_id)),
        ("worker process started", event_time(events, "EngineEvent", message=WORKER_STARTED_MESSAGE)),
        ("run started (definitions loaded)", event_time(events, "RunStartEvent")),
        # Steps run in the run worker (the platform's in-process executor): no second definitions load.
        ("first step started", event_time(events, "ExecutionStepStartEvent")),
        ("dbt step started", event_time(events, "ExecutionStepStartEvent", step=DBT_STEP)),
        ("first dbt model materialized", event_time(events, "MaterializationEvent", step=DBT_STEP)),
    ]
    for (start_name, start), (end_name, end) in itertools.pairwise(milestones):
        results.add(case, f"{prefix}{start_name} -> {end_name}", "s", end - start)
    results.add(case, f"{prefix}queued -> first dbt model materialized", "s", milestones[-1][1] - milestones[0][1])


def code_location_cold_start(deployment: Deployment, results: Results) -> None:
    """Case 4: the code location restarted (a rollout, as on an upgrade): restart -> the first new
    pod's container started -> its code server serving (its own log line); and restart -> every
    replica replaced (the chart rolls them one at a time, new before old)."""
    case = "4 code location cold start"
    name = component_name("code-location")
    apps_v1 = client.AppsV1Api(deployment.core_v1.api_client)
    replicas = apps_v1.read_namespaced_deployment(name, deployment.namespace).spec.replicas
    old_pods = {p.metadata.name for p in deployment.component_pods("code-location")}
    restarted_at = time.time()
    restart_component(deployment, "code-location")

    def rolled_out_and_serving() -> tuple[bool, object]:
        pods = deployment.component_pods("code-location")
        new = sorted((p for p in pods if p.metadata.name not in old_pods), key=lambda p: p.metadata.creation_timestamp)
        if len(new) != replicas or len(pods) != replicas or not all(p.status.phase == "Running" for p in new):
            return False, [(p.metadata.name, p.status.phase) for p in pods]
        lines = [code_server_started_line(deployment, p) for p in new]
        return all(lines), (new[0], lines[0], lines[-1]) if all(lines) else lines

    first, first_line, last_line = wait_until(
        f"the {replicas} restarted code servers to serve", rolled_out_and_serving, CODE_LOCATION_RESTART_TIMEOUT_SECONDS
    )

    serving_at = logged_at(first_line)
    container_started_at = first.status.container_statuses[0].state.running.started_at.timestamp()
    results.add(case, "restart -> container started", "s", container_started_at - restarted_at)
    results.add(case, "container started -> code server serving", "s", serving_at - container_started_at)
    results.add(case, "restart -> code server serving", "s", serving_at - restarted_at)
    results.add(case, f"restart -> all {replicas} replicas serving", "s", logged_at(last_line) - restarted_at)
    # The next run must find the location loaded again in the webserver.
    wait_location_loaded(deployment)


def code_server_started_line(deployment: Deployment, pod: client.V1Pod) -> str | None:
    """The code server's "serving" log line, with the kubelet's timestamp, if logged yet."""
    log = deployment.core_v1.read_namespaced_pod_log(
        pod.metadata.name, deployment.namespace, timestamps=True, _preload_content=False
    ).data.decode()
    return next((line for line in log.splitlines() if CODE_SERVER_STARTED_LINE in line), None)


def logged_at(line: str) -> float:
    """Seconds since the epoch of a log line read with timestamps=True."""
    # Kubernetes stamps nanoseconds; Python parses microseconds.
    return datetime.fromisoformat(line.split()[0][:26] + "+00:00").timestamp()


def pool_handover(deployment: Deployment, results: Results, snapshot_runs: int) -> None:
    """Case 5: `snapshot_runs` snapshot runs queued together on the limit-1 pool: the idle gap
    between one snapshot step ending and the next one starting."""
    case = "5 pool hand-over"
    api = deployment.api
    start = time.monotonic()
    run_ids = [api.launch_run(SNAPSHOT_JOB) for _ in range(snapshot_runs)]

    def all_finished() -> tuple[bool, object]:
        runs = [api.run(run_id) for run_id in run_ids]
        return all(run.finished for run in runs), [run.status for run in runs]

    wait_until(f"{snapshot_runs} {SNAPSHOT_JOB} runs to finish", all_finished, SNAPSHOT_RUNS_TIMEOUT_SECONDS)
    steps = []
    for run_id in run_ids:
        wait_success(api, run_id, SNAPSHOT_JOB)
        events = api.events(run_id)
        steps.append(
            (
                event_time(events, "ExecutionStepStartEvent", SNAPSHOT_STEP),
                event_time(events, "ExecutionStepSuccessEvent", SNAPSHOT_STEP),
            )
        )
    steps.sort()
    print(f"{snapshot_runs} snapshot runs: {time.monotonic() - start:.0f}s", flush=True)
    for (_, previous_end), (next_start, _) in itertools.pairwise(steps):
        if next_start < previous_end:
            raise RuntimeError(f"two {SNAPSHOT_STEP} steps overlapped: the pool's limit 1 did not hold ({steps})")
        results.add(case, "snapshot step ended -> next one started (idle)", "s", next_start - previous_end)
    for step_start, step_end in steps:
        results.add(case, "snapshot step duration", "s", step_end - step_start)


def synthetic_image(models: int) -> ProjectImage:
    """Case 3's image of `models` synthetic models: the project image's tag plus `-synthetic-N`."""
    return ProjectImage(
        f"{read_versions()['PROJECT_IMAGE']}-synthetic-{models}", lambda: synthetic_project.write_project(models)
    )


def growth(
    deployment: Deployment,
    results: Results,
    model_counts: tuple[int, ...],
    data_sizes: tuple[int, ...],
    repetitions: int,
    image_for: Callable[[int], ProjectImage] = synthetic_image,
) -> None:
    """Case 3: the eviction of case 1 (FROM_ASSET_FAILURE) in synthetic projects of each size and
    on raw data of each size. Each project gets an image of its own (`image_for`) the release is
    switched to (the caller switches it back); the raw data is loaded at its default size again at
    the end."""
    case = "3 growth"
    try:
        for models in model_counts:
            image = image_for(models)
            built = build_project_image(image.name, image.write_project())
            results.add(case, f"{models} models: image build (hack/build-images.sh, cached bases)", "s", built)
            switched = use_project_image(deployment, image.name, image.settings)
            if switched is not None:
                results.add(
                    case, f"{models} models: helm upgrade to the image -> its definitions served", "s", switched
                )
            early, _ = synthetic_project.model_names(models)
            missing = set(early) - deployment.api.job_asset_keys(RELEASE_JOB)
            if missing:
                raise RuntimeError(
                    f"{RELEASE_JOB} in the webserver lacks {len(missing)} synthetic models of {image.name}: "
                    "an old code server's definitions"
                )
            for size in data_sizes:
                load_raw_data(deployment, size)
                for repetition in range(1, repetitions + 1):
                    print(
                        f"== case 3: {models} models, raw data size {size}, repetition {repetition}/{repetitions}",
                        flush=True,
                    )
                    growth_sample(
                        deployment,
                        results,
                        f"{models} models, size {size}",
                        EXAMPLE_RELEASE.built_before_pause | set(early),
                    )
    finally:
        if set(data_sizes) != {RawDataConfig().size}:
            load_raw_data(deployment, RawDataConfig().size)


def growth_sample(deployment: Deployment, results: Results, label: str, done_before_fault: set[str]) -> None:
    """One eviction once the early synthetic models are built: what was done and how long it took
    the parent, what was left and how long it took the retry."""
    case = "3 growth"
    api = deployment.api
    faulted = faulted_release(
        deployment,
        evict,
        DEFAULT_RETRY_STRATEGY,
        frozenset(done_before_fault),
        GROWTH_SLOW_MODEL_SECONDS,
        GROWTH_REACH_TIMEOUT_SECONDS,
    )
    end_sleeping_sessions(deployment)
    done = set(api.materializations(faulted.parent.run_id))
    retried = set(api.materializations(faulted.retry.run_id))
    parent_dbt_started = event_time(api.events(faulted.parent.run_id), "ExecutionStepStartEvent", step=DBT_STEP)
    retry_dbt_started, retry_dbt_ended = api.step_interval(faulted.retry.run_id, DBT_STEP)
    results.add(case, f"{label}: assets done before the eviction", "assets", len(done))
    results.add(case, f"{label}: assets left (the retry materialized)", "assets", len(retried))
    results.add(
        case,
        f"{label}: parent, dbt step started -> eviction (the work done)",
        "s",
        faulted.fault_at - parent_dbt_started,
    )
    results.add(case, f"{label}: retry, dbt step (the work left)", "s", retry_dbt_ended - retry_dbt_started)
    results.add(
        case, f"{label}: retry wall time (created -> ended)", "s", faulted.retry.end_time - faulted.retry.creation_time
    )
    results.add(case, "assets the retry re-executed (every project and size)", "assets", len(retried & done))


def load_raw_data(deployment: Deployment, size: int) -> None:
    """The raw tables at `size`, loaded from here through the warehouse port-forward with the
    project's own generator (what raw_data_job runs)."""
    start = time.monotonic()
    load(deployment.warehouse, generate(size=size))
    print(f"raw data of size {size} loaded: {time.monotonic() - start:.0f}s", flush=True)


def end_sleeping_sessions(deployment: Deployment) -> None:
    """The evicted worker's slow-model `pg_sleep` runs on in PostgreSQL, which does not notice the
    client is gone, for up to GROWTH_SLOW_MODEL_SECONDS: end it rather than hold a connection."""
    with psycopg.connect(deployment.warehouse, autocommit=True) as conn:
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where pid <> pg_backend_pid() and query like '%pg_sleep%'"
        )
