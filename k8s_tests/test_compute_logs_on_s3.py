"""Step logs outlive the run's pod: the chart installed with `computeLogs.manager: s3`
(charts/dagster-dbt-k8s/ci/compute-logs-s3-values.yaml) against an S3-compatible server in the
same namespace (k8s_tests/harness/s3.py), a dbt step run, the run's Kubernetes Job deleted with its
pod, and the step's stdout read back through the webserver's GraphQL API, as the UI reads it.

The namespace enforces Pod Security "restricted": the chart's pods, the run pod and the S3 server
all pass it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from kubernetes import client

from k8s_tests.harness.cluster import (
    ImageMissing,
    KindCluster,
    built_image,
    wait_until,
)
from k8s_tests.harness.dagster_api import DagsterApi
from k8s_tests.harness.deployment import CHART_DIR, Deployment, chart_values, connect, run_up
from k8s_tests.harness.example import MODELS_STEP, STAGING_MODELS, STAGING_ORDERS
from k8s_tests.harness.release import failure_messages, wait_run_finished
from k8s_tests.harness.s3 import S3Server, deploy_s3_server

pytestmark = pytest.mark.usefixtures("namespace_artifacts_on_setup_failure")

COMPUTE_LOGS_VALUES = CHART_DIR / "ci" / "compute-logs-s3-values.yaml"
RESTRICTED_LABELS = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
# The staging models in a run pod: pod start, definitions load, dbt.
RUN_TIMEOUT_SECONDS = 600
JOB_GONE_TIMEOUT_SECONDS = 180


def s3_values() -> dict[str, Any]:
    """computeLogs.s3 as installed: the chart's defaults under the ci file's values."""
    defaults = chart_values()["computeLogs"]["s3"]
    return {**defaults, **yaml.safe_load(COMPUTE_LOGS_VALUES.read_text())["computeLogs"]["s3"]}


@pytest.fixture(scope="module")
def apps_v1(k8s_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(k8s_client)


@pytest.fixture(scope="module")
def s3_server(
    kind_cluster: KindCluster, namespace: str, core_v1: client.CoreV1Api, apps_v1: client.AppsV1Api
) -> Iterator[S3Server]:
    """The S3 server at the ci file's endpointUrl (a Service in the namespace), with its bucket and
    the Secret the ci file names."""
    try:
        image = built_image("S3_IMAGE", "make k8s-test-images")
    except ImageMissing as error:
        pytest.fail(str(error))
    kind_cluster.load_image(image)
    core_v1.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED_LABELS}})
    values = s3_values()
    endpoint = urlsplit(values["endpointUrl"])
    server = deploy_s3_server(
        kind_cluster,
        core_v1,
        apps_v1,
        namespace,
        image=image,
        service=endpoint.hostname,
        port=endpoint.port,
        bucket=values["bucket"],
        secret=values["existingSecret"],
        access_key_id_key=values["accessKeyIdKey"],
        secret_access_key_key=values["secretAccessKeyKey"],
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_logs_deployment(
    kind_cluster: KindCluster,
    namespace: str,
    core_v1: client.CoreV1Api,
    batch_v1: client.BatchV1Api,
    s3_server: S3Server,
) -> Iterator[Deployment]:
    """The chart with step logs on the S3 server, installed by hack/up.sh (raw data loaded). The
    namespace fixture deletes the namespace, release included, at the module's end."""
    run_up(kind_cluster, namespace, "load install port-forward raw-data", more_values=(COMPUTE_LOGS_VALUES,))
    deployment = connect(kind_cluster, namespace, core_v1, batch_v1)
    yield deployment
    deployment.webserver.stop()
    deployment.postgresql.stop()


def captured_stdout_file_key(api: DagsterApi, run_id: str, step_key: str) -> str:
    """fileKey of the LogsCapturedEvent that covers `step_key` (the UI's link to its logs)."""
    data = api.query(
        """query ($id: ID!) { logsForRun(runId: $id, limit: 1000) {
             __typename
             ... on EventConnection { events { __typename ... on LogsCapturedEvent { fileKey stepKeys } } }
             ... on PythonError { message }
           } }""",
        id=run_id,
    )["logsForRun"]
    assert data["__typename"] == "EventConnection", data
    keys = [
        e["fileKey"] for e in data["events"] if e["__typename"] == "LogsCapturedEvent" and step_key in e["stepKeys"]
    ]
    assert len(keys) == 1, f"run {run_id}: LogsCapturedEvents of step {step_key}: {data['events']}"
    return keys[0]


def captured_logs(api: DagsterApi, log_key: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(capturedLogs, capturedLogsMetadata) of a log key: what the UI's log viewer asks for."""
    data = api.query(
        """query ($logKey: [String!]!) {
             capturedLogs(logKey: $logKey) { stdout stderr cursor }
             capturedLogsMetadata(logKey: $logKey) { stdoutLocation stderrLocation }
           }""",
        logKey=log_key,
    )
    return data["capturedLogs"], data["capturedLogsMetadata"]


def delete_run_job(deployment: Deployment, run_id: str) -> None:
    """Deletes the run's Job and waits until neither it nor a pod of it is left."""
    job = f"dagster-run-{run_id}"
    deployment.batch_v1.delete_namespaced_job(job, deployment.namespace, propagation_policy="Foreground")

    def gone() -> tuple[bool, str]:
        pods = [p.metadata.name for p in deployment.run_pods(run_id)]
        try:
            deployment.batch_v1.read_namespaced_job(job, deployment.namespace)
            job_state = "present"
        except client.ApiException as error:
            if error.status != 404:
                raise
            job_state = "gone"
        return job_state == "gone" and not pods, f"job {job}: {job_state}; its pods: {pods}"

    wait_until(f"job {job} and its pod to be deleted", gone, JOB_GONE_TIMEOUT_SECONDS)


def test_step_stdout_is_read_from_s3_after_the_run_pod_is_gone(s3_logs_deployment: Deployment, s3_server: S3Server):
    deployment = s3_logs_deployment
    api = deployment.api
    # Every staging model, so the relationships tests between them find their parents.
    run_id = api.launch_run(IMPLICIT_ASSET_JOB_NAME, assets=sorted(STAGING_MODELS))
    deployment.runs_to_save.append(run_id)
    run = wait_run_finished(api, run_id, RUN_TIMEOUT_SECONDS, "a run of the staging models")
    assert run.status == "SUCCESS", failure_messages(api, run_id)
    assert deployment.run_pods(run_id), f"run {run_id} has no pod to delete"

    start = time.monotonic()
    delete_run_job(deployment, run_id)
    print(f"job dagster-run-{run_id} and its pod deleted in {time.monotonic() - start:.0f}s")

    # In the bucket, where the ci values put it: <prefix>/storage/<run id>/compute_logs/<file key>.out
    file_key = captured_stdout_file_key(api, run_id, MODELS_STEP)
    values = s3_values()
    stdout_key = f"{values['prefix']}/storage/{run_id}/compute_logs/{file_key}.out"
    objects = s3_server.objects(f"{values['prefix']}/storage/{run_id}/")
    assert stdout_key in objects, f"{stdout_key} not in bucket {s3_server.bucket}: {sorted(objects)}"
    stored = s3_server.read(stdout_key).decode()
    # dagster-dbt echoes dbt's log lines to the step's stdout; dbt names the model it builds.
    assert STAGING_ORDERS in stored, stored[-3000:]

    # And through the webserver, which never had the file: it reads it from the bucket.
    logs, metadata = captured_logs(api, [run_id, "compute_logs", file_key])
    assert metadata["stdoutLocation"] == f"s3://{s3_server.bucket}/{stdout_key}", metadata
    assert logs["stdout"], f"no stdout for step {MODELS_STEP} of run {run_id}: {logs}"
    lines = [line for line in logs["stdout"].splitlines() if STAGING_ORDERS in line]
    assert lines, f"no line naming {STAGING_ORDERS} in the step's stdout:\n{logs['stdout'][-3000:]}"
    assert logs["stdout"] == stored
    print(f"step {MODELS_STEP} stdout read back through GraphQL ({len(logs['stdout'])} bytes), e.g.: {lines[0]}")
