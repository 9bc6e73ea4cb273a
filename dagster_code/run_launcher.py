"""The chart's run launcher: dagster_k8s's K8sRunLauncher, with two more verdicts on a run's worker.

A run worker on a node that stopped answering is failed, so the run is retried on another node.
Kubernetes deletes the pod once it no longer tolerates the node's not-ready or unreachable taint
(the chart's nodeLoss.tolerationSeconds), but nothing completes the deletion: that is the
kubelet's part, on the lost node. With `podReplacementPolicy: Failed` the Job waits for the pod to
end, run monitoring sees a running Job, and the release stalls for as long as the node stays
away. When a run pod's deletion is overdue by STUCK_DELETION_SECONDS past its grace period, the
health check force-deletes it (what `kubectl delete --force` does for an operator) and fails the
worker. The cost, on a node that is cut off rather than dead: its worker may run on until the
node is back and its kubelet kills it, while the retry runs.

A run queued before a `helm upgrade` and dequeued after it was created from the definitions of the
image deployed then, which its pod would run: the launcher refuses it, naming both images, and the
retry daemon re-creates it from the definitions deployed now (a FROM_ASSET_FAILURE retry of a run
that built nothing selects everything it selected).

A run whose launch set Kubernetes config beyond the chart's allowlist is refused here too, for any
path that reaches the launcher without the run coordinator (dagster_code/run_pod_config.py, with
the allowlist the coordinator was configured with).

A run worker killed for memory fails its run with a message that says so, without retries
(dagster_code.out_of_memory).

Run monitoring fails a run whose worker died (its Job failed, or it never reported its start
within the start timeout) with the launcher's debug information about the worker's pod appended;
the retry daemon then retries it like an evicted worker, with the same memory limit, and it meets
the limit again. Monitoring asks for that debug information before it records the failure, so
that is where a worker container terminated `OOMKilled` turns the run's retries off and puts the
limit, and how to raise it, first in the failure's message.
"""

from __future__ import annotations

import datetime

from dagster._core.errors import DagsterError, DagsterUserCodeUnreachableError
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, ResumeRunContext, WorkerStatus
from dagster._core.remote_representation.code_location import CodeLocation, GrpcServerCodeLocation
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.workspace.context import BaseWorkspaceRequestContext
from dagster._grpc.types import GetCurrentImageResult
from dagster._serdes import deserialize_value
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import get_job_name_from_run_id
from kubernetes import client

from dagster_code.out_of_memory import HOW_TO_RAISE_THE_LIMIT, MAX_RETRIES_TAG, mark_out_of_memory
from dagster_code.run_coordinator import PlatformRunCoordinator
from dagster_code.run_pod_config import REFUSED_TAG, RunPodConfigRefused, refusal

OOM_KILLED = "OOMKilled"
# A kubelet stops a deleted pod's containers within its grace period; one that has not this long
# after it is not there to do it.
STUCK_DELETION_SECONDS = 15


class QueuedWithAnotherImage(DagsterError):
    """A run whose code location was upgraded while it waited in the queue."""


class PlatformK8sRunLauncher(K8sRunLauncher):
    def launch_run(self, context: LaunchRunContext) -> None:
        self.refuse_launched_k8s_config(context.dagster_run)
        message = image_upgraded_while_queued(context.dagster_run, context.workspace)
        if message is not None:
            raise QueuedWithAnotherImage(message)
        super().launch_run(context)

    def resume_run(self, context: ResumeRunContext) -> None:
        self.refuse_launched_k8s_config(context.dagster_run)
        super().resume_run(context)

    def refuse_launched_k8s_config(self, run: DagsterRun) -> None:
        coordinator = self._instance.run_coordinator
        allowed_keys = coordinator.allowed_k8s_config_keys if isinstance(coordinator, PlatformRunCoordinator) else ()
        message = refusal(self._instance, run, allowed_keys)
        if message is not None:
            # Before the failure is recorded (by whoever called the launcher), which is when the
            # retry daemon decides: a retry would copy the refused tags.
            self._instance.add_run_tags(run.run_id, {REFUSED_TAG: "true", MAX_RETRIES_TAG: "0"})
            raise RunPodConfigRefused(message)

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        result = super().check_run_worker_health(run)
        if result.status != WorkerStatus.RUNNING:
            return result
        namespace = self.get_container_context_for_run(run).namespace
        for pod in self._api_client.get_pods_in_job(self.job_name(run), namespace):
            overdue = deletion_overdue_seconds(pod)
            if overdue is None or overdue < STUCK_DELETION_SECONDS:
                continue
            self._api_client.core_api.delete_namespaced_pod(
                pod.metadata.name, namespace, body=client.V1DeleteOptions(grace_period_seconds=0)
            )
            message = (
                f"The run worker's node {pod.spec.node_name} stopped answering: its pod {pod.metadata.name} "
                f"was deleted ({deletion_reason(pod)}) and is still not stopped {overdue:.0f}s after its grace "
                "period ended. The pod was force-deleted so that the run can be retried on another node."
            )
            self._instance.report_engine_event(message, run)
            return CheckRunHealthResult(WorkerStatus.FAILED, message)
        return result

    def get_run_worker_debug_info(self, run: DagsterRun, include_container_logs: bool | None = True) -> str | None:
        debug_info = super().get_run_worker_debug_info(run, include_container_logs)
        message = self.out_of_memory_message(run)
        if message is None:
            return debug_info
        mark_out_of_memory(self._instance, run.run_id)
        return "\n".join(filter(None, [message, debug_info]))

    def out_of_memory_message(self, run: DagsterRun) -> str | None:
        """Why the run's worker died, if the kernel killed it for memory."""
        namespace = self.get_container_context_for_run(run).namespace
        for pod in self._api_client.get_pods_in_job(self.job_name(run), namespace):
            for status in pod.status.container_statuses or []:
                terminated = status.state.terminated or (status.last_state and status.last_state.terminated)
                if terminated is None or terminated.reason != OOM_KILLED:
                    continue
                container = next(c for c in pod.spec.containers if c.name == status.name)
                limits = (container.resources and container.resources.limits) or {}
                return (
                    f"Out of memory: the run worker (pod {pod.metadata.name}, container {status.name}) was "
                    f"killed by the kernel for exceeding its memory limit ({limits.get('memory', 'none set')}); "
                    f"Kubernetes reports {OOM_KILLED}, exit code {terminated.exit_code}. Not retried: a retry "
                    "with the same limit would fail the same way. " + HOW_TO_RAISE_THE_LIMIT
                )
        return None

    def job_name(self, run: DagsterRun) -> str:
        return get_job_name_from_run_id(run.run_id, resume_attempt_number=self._get_resume_attempt_number(run))


def deletion_overdue_seconds(pod: client.V1Pod) -> float | None:
    """Seconds since a deleted pod's grace period ended (its deletionTimestamp), if it is deleted
    and its containers are not all stopped."""
    deadline = pod.metadata.deletion_timestamp
    if deadline is None:
        return None
    if all(status.state.terminated for status in pod.status.container_statuses or []):
        return None
    return (datetime.datetime.now(datetime.UTC) - deadline).total_seconds()


def deletion_reason(pod: client.V1Pod) -> str:
    """Who deleted the pod, from its DisruptionTarget condition (the taint manager, a drain)."""
    for condition in pod.status.conditions or []:
        if condition.type == "DisruptionTarget" and condition.status == "True":
            return f"{condition.reason}: {condition.message}"
    return "no disruption condition"


def image_upgraded_while_queued(run: DagsterRun, workspace: BaseWorkspaceRequestContext | None) -> str | None:
    """Why the run must not start, if its code location serves another image than the one its
    definitions came from; None when it serves the same or either is unknown. The workspace's view
    may lag behind an upgrade in either direction (a run created by a webserver that saw the new
    image first), so the location's server is asked too, and only both saying so refuse the run."""
    origin = run.remote_job_origin
    queued_image = run.job_code_origin.repository_origin.container_image if run.job_code_origin else None
    if origin is None or queued_image is None or workspace is None:
        return None
    location_name = origin.repository_origin.code_location_origin.location_name
    if not workspace.has_code_location(location_name):
        return None
    location = workspace.get_code_location(location_name)
    if location.container_image in (None, queued_image) or served_image(location) in (None, queued_image):
        return None
    return (
        f"Not launched: run {run.run_id} was queued with the definitions of image {queued_image}, and code location "
        f"{location_name} now serves image {location.container_image} (an upgrade while the run waited). Its pod "
        "would run the image the definitions came from, not the one deployed; the retry daemon launches it again "
        "from the deployed definitions (or launch it again yourself)."
    )


def served_image(location: CodeLocation) -> str | None:
    """The image the location's server runs now (asked over gRPC; an in-process location's own)."""
    if not isinstance(location, GrpcServerCodeLocation):
        return location.container_image
    try:
        return deserialize_value(location.client.get_current_image(), GetCurrentImageResult).current_image
    except DagsterUserCodeUnreachableError:
        return None  # unknown: the run is launched as Dagster would, and fails there if it must
