"""Run-retry tags for the project's jobs.

The chart sets DAGSTER_RUN_RETRY_STRATEGY and DAGSTER_RUN_MAX_RETRIES from
`dagsterDaemon.runRetries` in values.yaml on the code location and the run pods; the
defaults below are used outside the chart and are kept equal to the chart's by a test.

`retry_on_asset_or_op_failure: false` means only infrastructure failures (an evicted or
killed run worker) are retried; a failing dbt model or test is not, because retrying
would fail the same way. One step failure is infrastructure too: dbt losing its warehouse
connection (PostgreSQL restarted or failed over mid-build). The dbt step then marks its run
retryable (`mark_retryable_after_lost_connection`), and the retry, which inherits its parent's
tags, puts the policy back before it builds (`restore_step_failure_policy`).
"""

from __future__ import annotations

import os

import dagster as dg

RETRY_STRATEGIES = ("FROM_ASSET_FAILURE", "FROM_FAILURE", "ALL_STEPS")
DEFAULT_RETRY_STRATEGY = "FROM_ASSET_FAILURE"
DEFAULT_MAX_RETRIES = 2
RETRY_ON_STEP_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"
# Set with RETRY_ON_STEP_FAILURE_TAG=true by a dbt step that lost its warehouse connection.
LOST_CONNECTION_TAG = "analytics/lost_warehouse_connection"
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
    "could not translate host name",
    "ssl connection has been closed unexpectedly",
    "connection already closed",
)


def retry_tags() -> dict[str, str]:
    strategy = os.environ.get("DAGSTER_RUN_RETRY_STRATEGY", DEFAULT_RETRY_STRATEGY)
    if strategy not in RETRY_STRATEGIES:
        raise ValueError(
            f"DAGSTER_RUN_RETRY_STRATEGY is '{strategy}'; expected one of {', '.join(RETRY_STRATEGIES)}"
        )
    max_retries = os.environ.get("DAGSTER_RUN_MAX_RETRIES", str(DEFAULT_MAX_RETRIES))
    if not max_retries.isdigit():
        raise ValueError(f"DAGSTER_RUN_MAX_RETRIES is '{max_retries}'; expected a whole number")
    return {
        "dagster/max_retries": max_retries,
        "dagster/retry_strategy": strategy,
        RETRY_ON_STEP_FAILURE_TAG: "false",
    }


def lost_warehouse_connection(error_text: str) -> bool:
    text = error_text.lower()
    return any(message in text for message in LOST_CONNECTION_MESSAGES)


def mark_retryable_after_lost_connection(context: dg.AssetExecutionContext) -> None:
    """Makes this run's step failure retryable, unless it already was."""
    if context.run.tags.get(RETRY_ON_STEP_FAILURE_TAG) != "true":
        context.instance.add_run_tags(context.run_id, {RETRY_ON_STEP_FAILURE_TAG: "true", LOST_CONNECTION_TAG: "true"})


def restore_step_failure_policy(context: dg.AssetExecutionContext) -> None:
    """In a retry of a run that lost its connection: model and test failures are final again."""
    if context.run.tags.get(LOST_CONNECTION_TAG) == "true":
        context.instance.add_run_tags(context.run_id, {RETRY_ON_STEP_FAILURE_TAG: "false", LOST_CONNECTION_TAG: "false"})
