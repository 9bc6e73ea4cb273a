"""The dbt vars of a release: its id is the run group's root, and the slow-model window (a test and
benchmark hook) opens in the first run only."""

from types import SimpleNamespace

import dagster as dg

from dagster_code.release_vars import SLOW_MODEL_SECONDS_TAG, release_dbt_vars


def vars_of(run_id: str, tags: dict[str, str]) -> dict:
    return release_dbt_vars(SimpleNamespace(run=dg.DagsterRun(job_name="release_job", run_id=run_id, tags=tags)))


def test_first_run_is_its_own_release_and_opens_the_slow_window():
    assert vars_of("first", {SLOW_MODEL_SECONDS_TAG: "30"}) == {"release_id": "first", "slow_model_seconds": 30}


def test_retry_belongs_to_the_root_release_and_builds_at_full_speed():
    tags = {SLOW_MODEL_SECONDS_TAG: "30", "dagster/root_run_id": "first", "dagster/retry_number": "1"}
    assert vars_of("retry", tags) == {"release_id": "first"}


def test_no_slow_window_unless_asked():
    assert vars_of("first", {}) == {"release_id": "first"}
