"""The chart's run coordinator: Dagster's run queue, with the platform's run policy applied to every
run when it is submitted, whatever launched it.

Every run reaches the queue through `submit_run`: the UI's Materialize (any selection, the implicit
asset job included), a re-execution, a backfill's runs, a schedule's or a sensor's, a GraphQL or
Python client's launch, and the retry daemon's retries. Policies set on job definitions miss most
of these (the implicit asset job has no tags, and a project without configuration has no job), so
the policy is applied here, once:

- Retries: a run without `dagster/retry_strategy` gets the instance's (the chart's
  `dagsterDaemon.runRetries.strategy`, FROM_ASSET_FAILURE: a retry builds only what its parent did
  not). Dagster's own default, FROM_FAILURE, re-runs a whole dbt step, i.e. every model again. A
  launch that sets the tag keeps it; `dagster/max_retries` falls back to the instance's
  `run_retries.max_retries` in Dagster itself.
- Lost connections: a run whose parent lost a connection copies the parent's mark that made step
  failures retryable; it is submitted with the mark taken off (dagster_code/retries.py), before it
  runs anything that could fail for good (a refusal of mixed code, a failing test).
- Releases: a run that selects any asset of a blue/green release (an asset tagged RELEASE_TAG by its
  definitions: the release models and the release's own assets) gets that tag on the run, replacing
  any value a launch gave it. The chart's instance always limits runs of one RELEASE_TAG value to
  one at a time, so a release never interleaves with another run that writes blue, however it was
  launched.
- Run pods: a run whose launch set Kubernetes config beyond the chart's allowlist (or run config
  that reconfigures the pod's code) is failed here, before it is queued, and never gets a pod
  (dagster_code/run_pod_config.py). Its retries are turned off before its failure is recorded, and
  a re-execution that copies its tags is refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dagster import Array, Enum, EnumValue, Field
from dagster._config import UserConfigSchema
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import RETRY_STRATEGY_TAG
from dagster._serdes import ConfigurableClassData

from dagster_code.out_of_memory import MAX_RETRIES_TAG
from dagster_code.retries import DEFAULT_RETRY_STRATEGY, RETRY_STRATEGIES, step_failure_policy_restored
from dagster_code.run_pod_config import ALLOWED_KEYS_SETTING, REFUSED_TAG, refusal

# On the definitions of every asset of a release, and on every run that selects one. Runs of one
# value run one at a time (the chart's run-tag limit on this key, per unique value).
RELEASE_TAG = "dagster-dbt-k8s/release"
RELEASE_TAG_VALUE = "blue-green"


class PlatformRunCoordinator(QueuedRunCoordinator):
    """`QueuedRunCoordinator` with `retry_strategy` and `allowed_run_tag_k8s_config_keys`: the
    config of Dagster's, plus those keys."""

    _retry_strategy = DEFAULT_RETRY_STRATEGY
    # Without the key (a dagster.yaml not rendered by the chart), a launch may set nothing.
    _allowed_k8s_config_keys: tuple[str, ...] = ()

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {
            **super().config_type(),
            "retry_strategy": Field(
                Enum("RetryStrategy", [EnumValue(strategy) for strategy in RETRY_STRATEGIES]),
                is_required=False,
                default_value=DEFAULT_RETRY_STRATEGY,
                description="The retry strategy of every run that does not set dagster/retry_strategy.",
            ),
            "allowed_run_tag_k8s_config_keys": Field(
                Array(str),
                is_required=False,
                default_value=[],
                description=f"Keys of dagster-k8s/config a launch may set ({ALLOWED_KEYS_SETTING}).",
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping
    ) -> PlatformRunCoordinator:
        config = dict(config_value)
        retry_strategy = config.pop("retry_strategy", DEFAULT_RETRY_STRATEGY)
        allowed_keys = tuple(config.pop("allowed_run_tag_k8s_config_keys", ()))
        coordinator = super().from_config_value(inst_data, config)
        coordinator._retry_strategy = retry_strategy
        coordinator._allowed_k8s_config_keys = allowed_keys
        return coordinator

    @property
    def retry_strategy(self) -> str:
        return self._retry_strategy

    @property
    def allowed_k8s_config_keys(self) -> tuple[str, ...]:
        return self._allowed_k8s_config_keys

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        if run.status == DagsterRunStatus.NOT_STARTED:
            message = refusal(self._instance, run, self.allowed_k8s_config_keys)
            if message is not None:
                return self.refuse(run, message)
            tags = policy_tags(run, self.retry_strategy, release_tag_values(run, context))
            if tags:
                self._instance.add_run_tags(run.run_id, tags)
                run = self._instance.get_run_by_id(run.run_id) or run
        return super().submit_run(context._replace(dagster_run=run))

    def refuse(self, run: DagsterRun, message: str) -> DagsterRun:
        """Fails the run unqueued. Retries are turned off first: the retry daemon decides from the
        run's tags when its failure is recorded (dagster/will_retry), and a retry would copy the
        tags that were refused."""
        self._instance.add_run_tags(run.run_id, {REFUSED_TAG: "true", MAX_RETRIES_TAG: "0"})
        run = self._instance.get_run_by_id(run.run_id) or run
        self._instance.report_run_failed(run, message)
        return self._instance.get_run_by_id(run.run_id) or run


def policy_tags(run: DagsterRun, retry_strategy: str, release_values: Iterable[str]) -> dict[str, str]:
    """The tags the platform adds to `run`: the retry strategy unless the run set one, and the
    release tag of the release assets it selects (one value: runs of two releases at once would
    need both limits, which Dagster's queue cannot hold for one run)."""
    tags = step_failure_policy_restored(run.tags)
    if RETRY_STRATEGY_TAG not in run.tags:
        tags[RETRY_STRATEGY_TAG] = retry_strategy
    values = sorted(set(release_values))
    if values:
        tags[RELEASE_TAG] = ",".join(values)
    if run.tags.get(RELEASE_TAG) == tags.get(RELEASE_TAG):
        tags.pop(RELEASE_TAG, None)
    return tags


def release_tag_values(run: DagsterRun, context: SubmitRunContext) -> set[str]:
    """The RELEASE_TAG values of the assets the run selects, read from its code location's
    definitions (the whole job's assets when the run selects no subset)."""
    origin = run.remote_job_origin
    if origin is None:
        return set()
    repository_origin = origin.repository_origin
    location_name = repository_origin.code_location_origin.location_name
    location = context.workspace.get_code_location(location_name)
    repository = location.get_repository(repository_origin.repository_name)
    if run.asset_selection is None:
        snaps = repository.get_asset_node_snaps(run.job_name)
    else:
        snaps = filter(None, map(repository.get_asset_node_snap, run.asset_selection))
    return {snap.tags[RELEASE_TAG] for snap in snaps if snap.tags and RELEASE_TAG in snap.tags}
