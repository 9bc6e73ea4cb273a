"""A dbt step that lost its warehouse connection makes its run retryable; its retry makes model
and test failures final again. The messages are dbt's own, as seen in the chaos suite (PostgreSQL
pod restarted mid-build) and in a failing release."""

from types import SimpleNamespace

import dagster as dg

from dagster_code.retries import (
    LOST_CONNECTION_TAG,
    RETRY_ON_STEP_FAILURE_TAG,
    lost_warehouse_connection,
    mark_retryable_after_lost_connection,
    restore_step_failure_policy,
    retry_tags,
)

LOST_CONNECTION = """Failure in model int_orders_enriched (models/intermediate/int_orders_enriched.sql)
  Database Error in model int_orders_enriched (models/intermediate/int_orders_enriched.sql)
  server closed the connection unexpectedly
  	This probably means the server terminated abnormally
  	before or while processing the request."""
FAILING_TEST = """Failure in test assert_fct_orders_revenue_non_negative (tests/assert_fct_orders_revenue_non_negative.sql)
  Got 1 result, configured to fail if != 0"""
BAD_SQL = """Database Error in model fct_orders (models/marts/fct_orders.sql)
  relation "blue.int_orders_enrichd" does not exist"""


def test_only_a_lost_connection_counts():
    assert lost_warehouse_connection(LOST_CONNECTION)
    assert not lost_warehouse_connection(FAILING_TEST)
    assert not lost_warehouse_connection(BAD_SQL)


def step_context(instance: dg.DagsterInstance, run_id: str) -> SimpleNamespace:
    """What the helpers read of an AssetExecutionContext: the run (as stored), its id, the instance."""
    return SimpleNamespace(run=instance.get_run_by_id(run_id), run_id=run_id, instance=instance)


def test_lost_connection_marks_the_run_and_its_retry_restores_the_policy():
    with dg.instance_for_test() as instance:
        parent = instance.add_run(dg.DagsterRun(job_name="release_job", run_id="parent", tags=retry_tags()))
        mark_retryable_after_lost_connection(step_context(instance, parent.run_id))
        parent_tags = instance.get_run_by_id(parent.run_id).tags
        assert parent_tags[RETRY_ON_STEP_FAILURE_TAG] == "true"
        assert parent_tags[LOST_CONNECTION_TAG] == "true"

        # The retry daemon copies the parent's tags onto the retry.
        retry = instance.add_run(dg.DagsterRun(job_name="release_job", run_id="retry", tags=parent_tags))
        restore_step_failure_policy(step_context(instance, retry.run_id))
        assert instance.get_run_by_id(retry.run_id).tags[RETRY_ON_STEP_FAILURE_TAG] == "false"


def test_a_run_retryable_by_configuration_is_left_alone():
    with dg.instance_for_test() as instance:
        tags = {**retry_tags(), RETRY_ON_STEP_FAILURE_TAG: "true"}
        run = instance.add_run(dg.DagsterRun(job_name="release_job", run_id="run", tags=tags))
        mark_retryable_after_lost_connection(step_context(instance, run.run_id))
        restore_step_failure_policy(step_context(instance, run.run_id))
        stored = instance.get_run_by_id(run.run_id).tags
        assert stored[RETRY_ON_STEP_FAILURE_TAG] == "true"
        assert LOST_CONNECTION_TAG not in stored
