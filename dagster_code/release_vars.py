"""The dbt vars every dbt invocation of a run passes.

A release is a run group: the first run and its automatic retries. They share the root run
id, so every model of the release, whichever run built it, is stamped with the same id.
dagster.yml's `vars_from_run_tags` passes a run tag's value as a dbt var, to the first run of
the group only: a retry runs without it (e.g. a test hook that slows the first run down, so a
fault can land while some assets are done; the retry then measures recovery, not the sleep).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import dagster as dg

ROOT_RUN_ID_TAG = "dagster/root_run_id"
RETRY_NUMBER_TAG = "dagster/retry_number"
# The var the blue/green package (dbt_blue_green/) stamps releases with.
RELEASE_ID_VAR = "release_id"
# The vars the package's macros read: where a release is built and published, and how long a
# promotion waits for consumers' locks.
BLUE_SCHEMA_VAR = "blue_schema"
GREEN_SCHEMA_VAR = "green_schema"
LOCK_WAIT_VAR = "blue_green_lock_wait_seconds"
# Set by the platform or the project, never by a run tag: a run tagged with another release id
# or schema would build, or promote, a release other than its run group's.
PLATFORM_VARS = (RELEASE_ID_VAR, BLUE_SCHEMA_VAR, GREEN_SCHEMA_VAR, LOCK_WAIT_VAR)
# A Dagster run id (str(uuid4())): the only form a release id takes. The root run id tag can be set
# by whoever launches a run, and the id reaches SQL (the macros also check it, in
# dbt_blue_green/macros/bluegreen_release_id.sql).
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class InvalidReleaseId(dg.DagsterError):
    """A release id that is not a Dagster run id."""


def release_id(run: dg.DagsterRun) -> str:
    """The release's id: its run group's root run id, checked to be a run id before any SQL."""
    value = run.tags.get(ROOT_RUN_ID_TAG, run.run_id)
    if not RUN_ID.fullmatch(value):
        raise InvalidReleaseId(
            f"Run {run.run_id}: the release id (tag {ROOT_RUN_ID_TAG}, dbt var {RELEASE_ID_VAR}) must be a Dagster "
            f"run id, a lowercase UUID such as {run.run_id}; got {value!r}. Nothing was run. Launch the release "
            f"without setting {ROOT_RUN_ID_TAG}: Dagster sets it on retries and re-executions."
        )
    return value


def run_dbt_vars(run: dg.DagsterRun, vars_from_run_tags: Mapping[str, str], with_release_id: bool) -> dict[str, str]:
    dbt_vars = {RELEASE_ID_VAR: release_id(run)} if with_release_id else {}
    if run.tags.get(RETRY_NUMBER_TAG, "0") == "0":
        for var, tag in vars_from_run_tags.items():
            if tag in run.tags:
                dbt_vars[var] = run.tags[tag]
    return dbt_vars
