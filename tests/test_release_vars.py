"""The dbt vars of a run: the release id is the run group's root, and a var from a run tag
(dagster.yml's vars_from_run_tags) reaches the first run only."""

import dagster as dg
import pytest

from dagster_code.release_vars import ROOT_RUN_ID_TAG, InvalidReleaseId, run_dbt_vars

SLOW_TAG = "example/slow_seconds"
FROM_TAGS = {"slow_seconds": SLOW_TAG}
FIRST, RETRY = "0b8f1c2e-5d4a-4f7e-9c3b-2a1d0e9f8c7b", "6c2d9e41-8b7a-4c3d-a1e2-f0b9c8d7e6a5"


def vars_of(run_id: str, tags: dict[str, str], with_release_id: bool = True) -> dict:
    return run_dbt_vars(dg.DagsterRun(job_name="release_job", run_id=run_id, tags=tags), FROM_TAGS, with_release_id)


def test_first_run_is_its_own_release_and_gets_the_tagged_var():
    assert vars_of(FIRST, {SLOW_TAG: "30"}) == {"release_id": FIRST, "slow_seconds": "30"}


def test_retry_belongs_to_the_root_release_and_runs_without_the_tagged_var():
    tags = {SLOW_TAG: "30", "dagster/root_run_id": FIRST, "dagster/retry_number": "1"}
    assert vars_of(RETRY, tags) == {"release_id": FIRST}


def test_no_tagged_var_unless_the_run_has_the_tag():
    assert vars_of(FIRST, {}) == {"release_id": FIRST}


def test_no_release_id_without_a_release():
    assert vars_of(FIRST, {SLOW_TAG: "5"}, with_release_id=False) == {"slow_seconds": "5"}


@pytest.mark.parametrize(
    "root_run_id", ["x'; drop table green._release_log; --", 'a"b', "FIRST-RUN", FIRST.upper(), FIRST + " "]
)
def test_a_release_id_that_is_not_a_run_id_is_refused_before_any_sql(root_run_id):
    """The root run id tag can be set by a launch; the id reaches SQL."""
    with pytest.raises(InvalidReleaseId, match="must be a Dagster run id") as refused:
        vars_of(RETRY, {"dagster/root_run_id": root_run_id})
    assert ROOT_RUN_ID_TAG in str(refused.value) and repr(root_run_id) in str(refused.value)
