"""Case 6 of the benchmark (issue 14): the platform's cost by the size of the dbt project, on
projects of k8s_tests/bench/scale_project.py, each packaged in an image of its own.

Per project size: `dbt parse` as the image build runs it; the image build; the release switched
to the image until its definitions are served; each code server's start (container started to its
"serving" log line) and peak memory; the webserver's asset-graph query; an uninterrupted release
(queued to the first dbt model, and its wall time) against the same `dbt build` run alone in a pod
made like its run pod; a release evicted once part of it is materialized, whose retry must
re-execute nothing whose checks had passed; the webserver's, daemon's and run worker's peak
memory. Components run with memory limits raised for the case (UNCAPPED_MEMORY), so that a peak
is measured rather than cut off by an OOM kill; the peaks are set against the chart's defaults.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from dagster_code.retries import DEFAULT_RETRY_STRATEGY
from k8s_tests.bench import scale_project, synthetic_project
from k8s_tests.bench.cases import (
    code_server_started_line,
    logged_at,
    record_launch_overhead,
    wait_success,
)
from k8s_tests.bench.deployment import (
    ProjectImage,
    build_project_image,
    container_memory,
    use_project_image,
)
from k8s_tests.bench.report import Results
from k8s_tests.bench.synthetic_project import SYNTHETIC_PROJECTS_DIR, copy_example
from k8s_tests.harness.cluster import read_versions, wait_until
from k8s_tests.harness.dagster_api import materialized
from k8s_tests.harness.deployment import Deployment, chart_values
from k8s_tests.harness.example import RELEASE_JOB, RELEASE_SELECT
from k8s_tests.harness.faults import evict, running_run_pod
from k8s_tests.harness.release import checks_pending, wait_retry, wait_run_finished

CASE = "6 scale"
SCALE_MODELS = (20, 500, 2000, 5000)
SCALE_MODELS_QUICK = (20,)
# The chart's values of each measured component (values.yaml), and the run worker's.
COMPONENT_VALUES = {
    "code-location": "codeLocation",
    "webserver": "dagsterWebserver",
    "daemon": "dagsterDaemon",
    "run worker": "runLauncher",
}
UNCAPPED_MEMORY = "6Gi"
UNCAPPED_LIMITS = {f"{key}.resources.limits.memory": UNCAPPED_MEMORY for key in COMPONENT_VALUES.values()}
# The release is evicted once this share of its assets is materialized.
EVICT_AT_SHARE = 0.3
# A release of 5,000 models on two cores; the retry builds what is left.
SCALE_RELEASE_TIMEOUT_SECONDS = 5400
DBT_PARSE_TIMEOUT_SECONDS = 1800
DBT_ALONE_TIMEOUT_SECONDS = SCALE_RELEASE_TIMEOUT_SECONDS
PROGRESS_SECONDS = 60
# What the example's profiles.yml reads, for `dbt parse` (no connection is opened): the image
# build's DBT_PARSE_ENV placeholders (Dockerfile).
PARSE_PLACEHOLDERS = ("DBT_PG_HOST", "DBT_PG_USER", "DBT_PG_PASSWORD", "DBT_PG_DATABASE")
# The fields the UI's asset graph asks of every asset node.
ASSET_GRAPH_QUERY = """{ assetNodes {
  id assetKey { path } groupName jobNames opNames kinds description
  isPartitioned isMaterializable isObservable
  dependencyKeys { path } dependedByKeys { path }
} }"""
# Pods the Job controller or the service-account admission add labels and volumes to.
NOT_COPIED_LABELS = re.compile(r"^(job-name|controller-uid|batch\.kubernetes\.io/.*)$")
SERVICE_ACCOUNT_VOLUME = re.compile(r"^kube-api-access-")


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity of the chart's values (Mi or Gi), in MiB."""
    units = {"Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def scale_image(models: int) -> ProjectImage:
    """Case 6's image of `models` generated models (the project image's tag plus `-scale-N`), run
    with raised memory limits."""
    return ProjectImage(
        f"{read_versions()['PROJECT_IMAGE']}-scale-{models}",
        lambda: scale_project.write_project(models),
        UNCAPPED_LIMITS,
    )


def shared_image(models: int) -> ProjectImage:
    """One image for cases 3 and 6 at `models` (--quick): the example plus case 3's synthetic models
    and case 6's generated ones, under case 6's raised limits. The second case's build is Docker's
    cache and its switch nothing: one image build, `kind load` and upgrade fewer."""

    def write_project() -> Path:
        target = copy_example(SYNTHETIC_PROJECTS_DIR / f"shared_{models}")
        return scale_project.add_models(synthetic_project.add_models(target, models), models)

    return ProjectImage(f"{read_versions()['PROJECT_IMAGE']}-shared-{models}", write_project, UNCAPPED_LIMITS)


def scale(
    deployment: Deployment,
    results: Results,
    model_counts: tuple[int, ...],
    image_for: Callable[[int], ProjectImage] = scale_image,
    with_uninterrupted: bool = True,
) -> None:
    """Case 6 at each project size, each in its image (`image_for`), on raised memory limits (the
    caller switches the release back to the project image; the limits stay raised).
    `with_uninterrupted`: also an uninterrupted release against dbt build alone."""
    defaults = chart_values()
    for component, key in COMPONENT_VALUES.items():
        limit = defaults[key]["resources"]["limits"]["memory"]
        results.add(CASE, f"chart default memory limit: {component}", "MiB", mebibytes(limit))
    for models in model_counts:
        print(f"== case 6: {scale_project.Shape(models).describe()}", flush=True)
        scale_sample(deployment, results, models, image_for(models), with_uninterrupted)


def scale_sample(
    deployment: Deployment, results: Results, models: int, image: ProjectImage, with_uninterrupted: bool
) -> None:
    label = f"{models} models"
    results.add(
        CASE,
        f"{label}: image build (hack/build-images.sh, cached bases)",
        "s",
        build_project_image(image.name, image.write_project()),
    )
    results.add(CASE, f"{label}: dbt parse, as the image build runs it", "s", dbt_parse_in_image(image.name))
    # The raised limits come with the first image's upgrade (one restart of every component).
    switched = use_project_image(deployment, image.name, image.settings)
    if switched is not None:
        results.add(CASE, f"{label}: helm upgrade to the image -> its definitions served", "s", switched)
    assets = deployment.api.job_asset_keys(RELEASE_JOB)
    if len(assets) < models:
        raise RuntimeError(f"{RELEASE_JOB} has {len(assets)} assets in the webserver, fewer than {models} models")
    results.add(CASE, f"{label}: assets of the release job", "assets", len(assets))
    record_code_servers(deployment, results, label)
    record_asset_graph_query(deployment, results, label)

    if with_uninterrupted:
        release_against_dbt_alone(deployment, results, label)
    evicted_release(deployment, results, label, len(assets))
    for component in ("webserver", "daemon"):
        (pod,) = deployment.component_pods(component)
        record_memory(deployment, results, f"{label}: {component}", pod)


def release_against_dbt_alone(deployment: Deployment, results: Results, label: str) -> None:
    uninterrupted = wait_success(
        deployment.api,
        deployment.api.launch_run(RELEASE_JOB),
        f"an uninterrupted release of {label}",
        SCALE_RELEASE_TIMEOUT_SECONDS,
    )
    record_launch_overhead(deployment, uninterrupted, results, CASE, f"{label}: ")
    platform_seconds = uninterrupted.end_time - uninterrupted.creation_time
    results.add(CASE, f"{label}: release wall time (queued -> ended)", "s", platform_seconds)
    (run_pod,) = deployment.run_pods(uninterrupted.run_id)
    alone_seconds = dbt_alone(deployment, run_pod)
    results.add(CASE, f"{label}: dbt build alone, pod created -> ended", "s", alone_seconds)
    results.add(CASE, f"{label}: platform release / dbt build alone", "ratio", platform_seconds / alone_seconds)


def dbt_parse_in_image(image: str) -> float:
    """`dbt parse` of the image's project, with no partial parse, inside the image (the build's own
    environment and placeholders); seconds measured inside the container."""
    placeholders = [arg for name in PARSE_PLACEHOLDERS for arg in ("--env", f"{name}=parse-placeholder")]
    script = (
        'cd "${DBT_PROJECT_DIR}" && start=$(date +%s%N) && '
        "dbt parse --no-partial-parse --quiet --target-path /tmp/target --log-path /tmp/logs && "
        'echo "parse_ns $(( $(date +%s%N) - start ))"'
    )
    output = subprocess.run(
        ["docker", "run", "--rm", "--pull", "never", "--network", "none", *placeholders, image, "sh", "-c", script],
        check=True,
        capture_output=True,
        text=True,
        timeout=DBT_PARSE_TIMEOUT_SECONDS,
    ).stdout
    match = re.search(r"^parse_ns (\d+)$", output, flags=re.MULTILINE)
    if not match:
        raise RuntimeError(f"dbt parse in {image} printed no timing:\n{output[-2000:]}")
    return int(match.group(1)) / 1e9


def record_code_servers(deployment: Deployment, results: Results, label: str) -> None:
    """Each code server of the upgrade: container started -> serving, and its peak memory."""
    for index, pod in enumerate(sorted(deployment.component_pods("code-location"), key=lambda p: p.metadata.name)):
        line = code_server_started_line(deployment, pod)
        if line is None:
            raise RuntimeError(f"code server {pod.metadata.name} is ready but has not logged that it serves")
        started = pod.status.container_statuses[0].state.running.started_at.timestamp()
        results.add(CASE, f"{label}: code server container started -> serving", "s", logged_at(line) - started)
        record_memory(deployment, results, f"{label}: code server {index + 1}", pod)


def record_memory(deployment: Deployment, results: Results, what: str, pod: client.V1Pod) -> None:
    memory = container_memory(deployment, pod)
    results.add(CASE, f"{what} peak RSS (sum of its processes' VmHWM)", "MiB", memory.processes_peak)
    results.add(CASE, f"{what} memory cgroup peak (page cache included)", "MiB", memory.cgroup_peak)


def record_asset_graph_query(deployment: Deployment, results: Results, label: str) -> None:
    """The UI's asset-graph fields of every asset node, asked twice (the first may fill caches)."""
    for attempt in ("first", "second"):
        start = time.monotonic()
        nodes = deployment.api.query(ASSET_GRAPH_QUERY)["assetNodes"]
        results.add(CASE, f"{label}: asset graph query ({attempt}, {len(nodes)} nodes)", "s", time.monotonic() - start)


def dbt_alone(deployment: Deployment, run_pod: client.V1Pod) -> float:
    """The release's dbt selection built by `dbt build` alone, in a pod made like `run_pod` (image,
    environment, volumes, resources, security, labels the network policies match, node), into the
    profile's default target; seconds from the pod created to its container ended."""
    spec = run_pod.spec
    (container,) = spec.containers
    name = f"bench-dbt-alone-{int(time.time())}"
    script = 'cd "${DBT_PROJECT_DIR}" && exec dbt build --select "$0" --target-path /tmp/target --log-path /tmp/logs'
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={k: v for k, v in (run_pod.metadata.labels or {}).items() if not NOT_COPIED_LABELS.match(k)},
        ),
        spec=client.V1PodSpec(
            restart_policy="Never",
            node_name=spec.node_name,
            service_account_name=spec.service_account_name,
            automount_service_account_token=False,
            security_context=spec.security_context,
            volumes=[v for v in spec.volumes or [] if not SERVICE_ACCOUNT_VOLUME.match(v.name)] or None,
            containers=[
                client.V1Container(
                    name="dbt",
                    image=container.image,
                    image_pull_policy=container.image_pull_policy,
                    command=["sh", "-c", script, RELEASE_SELECT],
                    env=container.env,
                    env_from=container.env_from,
                    resources=container.resources,
                    security_context=container.security_context,
                    volume_mounts=[m for m in container.volume_mounts or [] if not SERVICE_ACCOUNT_VOLUME.match(m.name)]
                    or None,
                )
            ],
        ),
    )
    created = deployment.core_v1.create_namespaced_pod(deployment.namespace, pod)
    try:

        def ended() -> tuple[bool, object]:
            current = deployment.core_v1.read_namespaced_pod(name, deployment.namespace)
            return current.status.phase in ("Succeeded", "Failed"), current

        done = wait_until(f"dbt build alone (pod {name}) to end", ended, DBT_ALONE_TIMEOUT_SECONDS, interval=5)
        terminated = done.status.container_statuses[0].state.terminated
        if done.status.phase != "Succeeded":
            log = deployment.core_v1.read_namespaced_pod_log(name, deployment.namespace, tail_lines=40)
            raise RuntimeError(f"dbt build alone (pod {name}) ended {done.status.phase}:\n{log}")
        return terminated.finished_at.timestamp() - created.metadata.creation_timestamp.timestamp()
    finally:
        deployment.core_v1.delete_namespaced_pod(name, deployment.namespace)


def evicted_release(deployment: Deployment, results: Results, label: str, asset_count: int) -> None:
    """A release evicted once EVICT_AT_SHARE of its assets are materialized, retried with the
    default strategy: what the retry re-executed of what the parent had materialized (only assets
    whose checks the eviction interrupted may be rebuilt), and the run worker's peak memory."""
    api = deployment.api
    parent_id = api.launch_run(RELEASE_JOB)
    threshold = max(1, int(asset_count * EVICT_AT_SHARE))
    last_progress = time.monotonic()

    def reached() -> tuple[bool, object]:
        nonlocal last_progress
        run = api.run(parent_id)
        if run.finished:
            raise RuntimeError(f"release {parent_id} ended {run.status} before the eviction")
        count = api.materialization_count(parent_id)
        if time.monotonic() - last_progress > PROGRESS_SECONDS:
            print(f"release {parent_id}: {count} of {threshold} materializations before the eviction", flush=True)
            last_progress = time.monotonic()
        return count >= threshold, (run.status, count)

    wait_until(f"release {parent_id} to materialize {threshold} assets", reached, SCALE_RELEASE_TIMEOUT_SECONDS)
    pod = running_run_pod(deployment, parent_id)
    record_memory(deployment, results, f"{label}: run worker (until the eviction)", pod)
    evict(deployment, pod)
    parent = wait_run_finished(api, parent_id, SCALE_RELEASE_TIMEOUT_SECONDS, "the evicted release")
    if parent.status != "FAILURE":
        raise RuntimeError(f"the evicted release {parent_id} ended {parent.status}, not FAILURE")
    retry = wait_success(api, wait_retry(api, parent_id).run_id, "the retry", SCALE_RELEASE_TIMEOUT_SECONDS)
    if retry.tags.get("dagster/retry_strategy", DEFAULT_RETRY_STRATEGY) != DEFAULT_RETRY_STRATEGY:
        raise RuntimeError(f"retry {retry.run_id} ran with {retry.tags['dagster/retry_strategy']}")
    events = api.events(parent_id)
    done = set(materialized(events))
    interrupted = set(checks_pending(events, done).values())
    redone = set(api.materializations(retry.run_id)) & done
    results.add(CASE, f"{label}: assets materialized before the eviction", "assets", len(done))
    results.add(CASE, f"{label}: of those, checks interrupted (may be rebuilt)", "assets", len(interrupted))
    results.add(CASE, f"{label}: retry re-executed, checks had passed (must be 0)", "assets", len(redone - interrupted))
    results.add(CASE, f"{label}: retry re-executed, checks interrupted", "assets", len(redone & interrupted))
    results.add(CASE, f"{label}: retry wall time (queued -> ended)", "s", retry.end_time - retry.creation_time)
    record_launch_overhead(deployment, retry, results, CASE, f"{label}: retry, ")
