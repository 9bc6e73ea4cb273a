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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dagster import Enum, EnumValue, Field
from dagster._config import UserConfigSchema
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import RETRY_STRATEGY_TAG
from dagster._serdes import ConfigurableClassData

from dagster_code.retries import DEFAULT_RETRY_STRATEGY, RETRY_STRATEGIES, step_failure_policy_restored

# On the definitions of every asset of a release, and on every run that selects one. Runs of one
# value run one at a time (the chart's run-tag limit on this key, per unique value).
RELEASE_TAG = "dagster-dbt-k8s/release"
RELEASE_TAG_VALUE = "blue-green"


class PlatformRunCoordinator(QueuedRunCoordinator):
    """`QueuedRunCoordinator` with `retry_strategy`: the config of Dagster's, plus that key."""

    _retry_strategy = DEFAULT_RETRY_STRATEGY

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
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping
    ) -> PlatformRunCoordinator:
        config = dict(config_value)
        retry_strategy = config.pop("retry_strategy", DEFAULT_RETRY_STRATEGY)
        coordinator = super().from_config_value(inst_data, config)
        coordinator._retry_strategy = retry_strategy
        return coordinator

    @property
    def retry_strategy(self) -> str:
        return self._retry_strategy

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        if run.status == DagsterRunStatus.NOT_STARTED:
            tags = policy_tags(run, self.retry_strategy, release_tag_values(run, context))
            if tags:
                self._instance.add_run_tags(run.run_id, tags)
                run = self._instance.get_run_by_id(run.run_id) or run
        return super().submit_run(context._replace(dagster_run=run))


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
