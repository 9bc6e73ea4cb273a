"""Run retries: which failures are retried, and how.

Every run gets its retry strategy where it is submitted (dagster_code/run_coordinator.py: the
chart's `dagsterDaemon.runRetries.strategy`, FROM_ASSET_FAILURE unless the launch sets
`dagster/retry_strategy`), and its maximum from the instance's `run_retries.max_retries`.

`retry_on_asset_or_op_failure: false` means only infrastructure failures (an evicted or
killed run worker) are retried; a failing dbt model or test is not, because retrying
would fail the same way. One step failure is infrastructure too: a lost connection to
PostgreSQL (restarted or failed over mid-build), whether dbt lost the warehouse or the step
lost Dagster's own storage while recording an event. Such a step marks its run retryable
(`mark_retryable_after_lost_connection`): the dbt component when dbt reports it, and the
jobs' failure hook (`retryable_after_lost_connection`) for any step. The mark is the failed run's
alone: its retry, which copies its tags, is submitted with the policy put back
(`step_failure_policy_restored`, applied by the run coordinator before the retry runs anything),
so a refusal or a failing test in the retry is final.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

RETRY_STRATEGIES = ("FROM_ASSET_FAILURE", "FROM_FAILURE", "ALL_STEPS")
DEFAULT_RETRY_STRATEGY = "FROM_ASSET_FAILURE"
RETRY_ON_STEP_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"
# Set with RETRY_ON_STEP_FAILURE_TAG=true by a dbt step that lost its warehouse connection.
LOST_CONNECTION_TAG = "dagster-dbt-k8s/lost_warehouse_connection"
# What libpq, PostgreSQL and dbt say when the connection failed rather than the SQL.
LOST_CONNECTION_MESSAGES = (
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "could not connect to server",
    "connection refused",
    "connection timed out",
    # libpq's connect_timeout (the chart's postgresqlClient) on a connection opened during a
    # partition: 'connection to server at "..." (...), port 5432 failed: timeout expired'.
    "failed: timeout expired",
    "could not translate host name",
    "ssl connection has been closed unexpectedly",
    "connection already closed",
)


def lost_warehouse_connection(error_text: str) -> bool:
    text = error_text.lower()
    return any(message in text for message in LOST_CONNECTION_MESSAGES)


def raised_by_lost_connection(error: BaseException) -> bool:
    """The error, or one it was raised from or while handling, says a connection broke."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if lost_warehouse_connection(str(cause)):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def mark_retryable_after_lost_connection(context: dg.AssetExecutionContext | dg.HookContext) -> None:
    """Makes this run's step failure retryable, unless it already was."""
    if context.instance.get_run_by_id(context.run_id).tags.get(RETRY_ON_STEP_FAILURE_TAG) != "true":
        context.instance.add_run_tags(context.run_id, {RETRY_ON_STEP_FAILURE_TAG: "true", LOST_CONNECTION_TAG: "true"})


@dg.failure_hook
def retryable_after_lost_connection(context: dg.HookContext) -> None:
    """Any step of the project's jobs that failed on a lost connection (seen: a PostgreSQL restart
    while the step was storing an asset check's result, outside dbt) makes its run retryable.
    Hooks run before the run's failure is recorded, which is when Dagster decides on a retry."""
    error = context.op_exception
    if error is not None and raised_by_lost_connection(error):
        context.log.warning(
            f"Step {context.step_key} lost a connection to PostgreSQL (not a model or test failure): "
            "this run's failure is marked retryable, so its retry builds what is missing."
        )
        mark_retryable_after_lost_connection(context)


def step_failure_policy_restored(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags that make model and test failures final again in a run whose tags say its parent
    lost a connection (none otherwise)."""
    if tags.get(LOST_CONNECTION_TAG) == "true":
        return {RETRY_ON_STEP_FAILURE_TAG: "false", LOST_CONNECTION_TAG: "false"}
    return {}
