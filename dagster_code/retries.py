"""Run-retry tags for the project's jobs.

The chart sets DAGSTER_RUN_RETRY_STRATEGY and DAGSTER_RUN_MAX_RETRIES from
`dagsterDaemon.runRetries` in values.yaml on the code location and the run pods; the
defaults below are used outside the chart and are kept equal to the chart's by a test.

`retry_on_asset_or_op_failure: false` means only infrastructure failures (an evicted or
killed run worker) are retried; a failing dbt model or test is not, because retrying
would fail the same way.
"""

from __future__ import annotations

import os

RETRY_STRATEGIES = ("FROM_ASSET_FAILURE", "FROM_FAILURE", "ALL_STEPS")
DEFAULT_RETRY_STRATEGY = "FROM_ASSET_FAILURE"
DEFAULT_MAX_RETRIES = 2


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
        "dagster/retry_on_asset_or_op_failure": "false",
    }
