"""The dbt vars a run passes to every dbt invocation of a release.

A release is a run group: the first run and its automatic retries. They share the root run
id, so every model of the release, whichever run built it, is stamped with the same id.
"""

from __future__ import annotations

import dagster as dg

ROOT_RUN_ID_TAG = "dagster/root_run_id"
RETRY_NUMBER_TAG = "dagster/retry_number"
# Tests and the benchmark set this tag to slow the build at a known model (see the dbt
# macro `sleep_seconds`), so that a fault can land while some assets are done and others not.
SLOW_MODEL_SECONDS_TAG = "analytics/slow_model_seconds"


def release_id(run: dg.DagsterRun) -> str:
    return run.tags.get(ROOT_RUN_ID_TAG, run.run_id)


def release_dbt_vars(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> dict[str, str | int]:
    dbt_vars: dict[str, str | int] = {"release_id": release_id(context.run)}
    slow = context.run.tags.get(SLOW_MODEL_SECONDS_TAG)
    # Retries inherit the run's tags, but the window is for the first run's fault only: a retry
    # builds at full speed, so recovery figures measure recovery, not the sleep again.
    if slow is not None and context.run.tags.get(RETRY_NUMBER_TAG, "0") == "0":
        dbt_vars["slow_model_seconds"] = int(slow)
    return dbt_vars
