"""The chart's run launcher: dagster_k8s's K8sRunLauncher, and a run worker killed for memory
fails its run with a message that says so, without retries (dagster_code.out_of_memory).

Run monitoring fails a run whose worker died (its Job failed, or it never reported its start
within the start timeout) with the launcher's debug information about the worker's pod appended;
the retry daemon then retries it like an evicted worker, with the same memory limit, and it meets
the limit again. Monitoring asks for that debug information before it records the failure, so
that is where a worker container terminated `OOMKilled` turns the run's retries off and puts the
limit, and how to raise it, first in the failure's message.
"""

from __future__ import annotations

from dagster._core.storage.dagster_run import DagsterRun
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import get_job_name_from_run_id

from dagster_code.out_of_memory import HOW_TO_RAISE_THE_LIMIT, mark_out_of_memory

OOM_KILLED = "OOMKilled"


class PlatformK8sRunLauncher(K8sRunLauncher):
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
        job_name = get_job_name_from_run_id(run.run_id, resume_attempt_number=self._get_resume_attempt_number(run))
        for pod in self._api_client.get_pods_in_job(job_name, namespace):
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
