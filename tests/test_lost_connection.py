"""A step that lost its connection to PostgreSQL (dbt's warehouse, or Dagster's storage) makes its
run retryable; its retry makes model and test failures final again. The messages are the ones seen
in the chaos suite (PostgreSQL pod restarted mid-build) and in a failing release."""

from types import SimpleNamespace

import dagster as dg
import pytest
import sqlalchemy.exc

from dagster_code.retries import (
    LOST_CONNECTION_TAG,
    RETRY_ON_STEP_FAILURE_TAG,
    lost_warehouse_connection,
    mark_retryable_after_lost_connection,
    raised_by_lost_connection,
    retryable_after_lost_connection,
    step_failure_policy_restored,
)

# dbt's message, tabs included (libpq indents its hint with one).
LOST_CONNECTION = (
    "Failure in model int_orders_enriched (models/intermediate/int_orders_enriched.sql)\n"
    "  Database Error in model int_orders_enriched (models/intermediate/int_orders_enriched.sql)\n"
    "  server closed the connection unexpectedly\n"
    "  \tThis probably means the server terminated abnormally\n"
    "  \tbefore or while processing the request."
)
FAILING_TEST = (
    "Failure in test assert_fct_orders_revenue_non_negative (tests/assert_fct_orders_revenue_non_negative.sql)\n"
    "  Got 1 result, configured to fail if != 0"
)
BAD_SQL = """Database Error in model fct_orders (models/marts/fct_orders.sql)
  relation "blue.int_orders_enrichd" does not exist"""

# What the run coordinator gives a run launched without retry tags, on an instance of the chart's.
RETRY_TAGS = {"dagster/max_retries": "2", "dagster/retry_strategy": "FROM_ASSET_FAILURE"}


def test_only_a_lost_connection_counts():
    assert lost_warehouse_connection(LOST_CONNECTION)
    assert not lost_warehouse_connection(FAILING_TEST)
    assert not lost_warehouse_connection(BAD_SQL)


def step_context(instance: dg.DagsterInstance, run_id: str) -> SimpleNamespace:
    """What the helpers read of an AssetExecutionContext: the run (as stored), its id, the instance."""
    return SimpleNamespace(run=instance.get_run_by_id(run_id), run_id=run_id, instance=instance)


def test_lost_connection_marks_the_run_and_its_retry_restores_the_policy():
    with dg.instance_for_test() as instance:
        parent = instance.add_run(dg.DagsterRun(job_name="release_job", run_id="parent", tags=RETRY_TAGS))
        mark_retryable_after_lost_connection(step_context(instance, parent.run_id))
        parent_tags = instance.get_run_by_id(parent.run_id).tags
        assert parent_tags[RETRY_ON_STEP_FAILURE_TAG] == "true"
        assert parent_tags[LOST_CONNECTION_TAG] == "true"

        # The retry daemon copies the parent's tags onto the retry; the run coordinator then adds these.
        assert step_failure_policy_restored(parent_tags) == {
            RETRY_ON_STEP_FAILURE_TAG: "false",
            LOST_CONNECTION_TAG: "false",
        }


def test_a_run_retryable_by_configuration_is_left_alone():
    with dg.instance_for_test() as instance:
        tags = {**RETRY_TAGS, RETRY_ON_STEP_FAILURE_TAG: "true"}
        run = instance.add_run(dg.DagsterRun(job_name="release_job", run_id="run", tags=tags))
        mark_retryable_after_lost_connection(step_context(instance, run.run_id))
        stored = instance.get_run_by_id(run.run_id).tags
        assert step_failure_policy_restored(stored) == {}
        assert stored[RETRY_ON_STEP_FAILURE_TAG] == "true"
        assert LOST_CONNECTION_TAG not in stored


def storage_error_of_a_restarted_postgresql() -> Exception:
    """What Dagster raised in scenario 8 when PostgreSQL went away while the dbt step stored an
    asset check's result: SQLAlchemy's error around libpq's."""
    try:
        try:
            raise RuntimeError(
                "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally"
            )
        except RuntimeError as libpq_error:
            raise sqlalchemy.exc.OperationalError(
                "UPDATE asset_check_executions SET ...", {}, libpq_error
            ) from libpq_error
    except sqlalchemy.exc.OperationalError as error:
        return error


def test_a_lost_connection_is_found_in_the_errors_chain():
    assert raised_by_lost_connection(storage_error_of_a_restarted_postgresql())
    try:
        try:
            raise storage_error_of_a_restarted_postgresql()
        except sqlalchemy.exc.OperationalError:
            # Implicit chaining (__context__, no `from`) is what Dagster's storage errors carry.
            raise ValueError("while storing the event")  # noqa: B904
    except ValueError as wrapped:
        assert raised_by_lost_connection(wrapped)
    assert not raised_by_lost_connection(ValueError(BAD_SQL))


@pytest.mark.parametrize(
    ("error", "retryable"), [(storage_error_of_a_restarted_postgresql(), True), (ValueError(BAD_SQL), False)]
)
def test_the_jobs_failure_hook_marks_only_a_lost_connection(error, retryable):
    @dg.asset
    def fails():
        raise error

    job = dg.define_asset_job("job", selection=[fails], tags=RETRY_TAGS, hooks={retryable_after_lost_connection})
    defs = dg.Definitions(assets=[fails], jobs=[job])
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("job").execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        tags = instance.get_run_by_id(result.run_id).tags
        assert (tags.get(RETRY_ON_STEP_FAILURE_TAG) == "true") is retryable
        assert (LOST_CONNECTION_TAG in tags) is retryable
