"""The dbt vars of a run: the release id is the run group's root, and a var from a run tag
(dagster.yml's vars_from_run_tags) reaches the first run only."""

import dagster as dg

from dagster_code.release_vars import run_dbt_vars

SLOW_TAG = "example/slow_seconds"
FROM_TAGS = {"slow_seconds": SLOW_TAG}


def vars_of(run_id: str, tags: dict[str, str], with_release_id: bool = True) -> dict:
    return run_dbt_vars(dg.DagsterRun(job_name="release_job", run_id=run_id, tags=tags), FROM_TAGS, with_release_id)


def test_first_run_is_its_own_release_and_gets_the_tagged_var():
    assert vars_of("first", {SLOW_TAG: "30"}) == {"release_id": "first", "slow_seconds": "30"}


def test_retry_belongs_to_the_root_release_and_runs_without_the_tagged_var():
    tags = {SLOW_TAG: "30", "dagster/root_run_id": "first", "dagster/retry_number": "1"}
    assert vars_of("retry", tags) == {"release_id": "first"}


def test_no_tagged_var_unless_the_run_has_the_tag():
    assert vars_of("first", {}) == {"release_id": "first"}


def test_no_release_id_without_a_release():
    assert vars_of("first", {SLOW_TAG: "5"}, with_release_id=False) == {"slow_seconds": "5"}
