"""The run policy applies to every run whatever launched it: runs launched through Dagster's own
GraphQL schema (the webserver's launchRun, what the UI's Materialize button sends), in process
against the example's definitions and an instance configured from the chart's values."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.launcher import LaunchRunContext
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._scheduler.scheduler import launch_scheduled_runs
from dagster._time import get_current_datetime
from dagster_graphql.test.utils import execute_dagster_graphql

from dagster_code.local.instance import chart_values
from dagster_code.retries import LOST_CONNECTION_TAG, RETRY_ON_STEP_FAILURE_TAG
from dagster_code.run_coordinator import RELEASE_TAG, RELEASE_TAG_VALUE
from dagster_code.run_launcher import PlatformK8sRunLauncher, image_upgraded_while_queued
from dagster_code.run_pod_config import RunPodConfigRefused
from k8s_tests.harness.dagster_api import LAUNCH_RUN_MUTATION, REPOSITORY_NAME
from tests.conftest import REPO_ROOT

IMPLICIT_ASSET_JOB = "__ASSET_JOB"
RETRY_STRATEGY_TAG = "dagster/retry_strategy"
# An asset of the example outside its release, and one inside it.
NOT_RELEASED, RELEASED = "snap_customers", "fct_orders"


DEFINITIONS = LoadableTargetOrigin(module_name="dagster_code.definitions", working_directory=str(REPO_ROOT))
# What the chart's code servers report as their image (DAGSTER_CURRENT_IMAGE), before and after an upgrade.
IMAGE, UPGRADED_IMAGE = "dagster-dbt-k8s:1", "dagster-dbt-k8s:2"


@pytest.fixture
def workspace(instance: dg.DagsterInstance, dbt_manifest) -> Iterator[WorkspaceRequestContext]:
    with in_process_test_workspace(instance, DEFINITIONS, container_image=IMAGE) as workspace:
        yield workspace


def launch_run(workspace: WorkspaceRequestContext, job: str, assets, tags=None, run_config=None) -> dg.DagsterRun:
    """launchRun as the UI sends it: with `assets`, the UI's Materialize of that selection."""
    (location,) = workspace.code_location_names
    selector = {"repositoryLocationName": location, "repositoryName": REPOSITORY_NAME, "jobName": job}
    if assets is not None:
        selector["assetSelection"] = [{"path": key.split("/")} for key in assets]
    params = {
        "selector": selector,
        "runConfigData": run_config or {},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    result = execute_dagster_graphql(workspace, LAUNCH_RUN_MUTATION, {"params": params})
    assert result.errors is None, result.errors
    answer = result.data["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return workspace.instance.get_run_by_id(answer["run"]["runId"])


def launch(workspace: WorkspaceRequestContext, job: str, assets: list[str] | None = None, tags=None) -> dg.DagsterRun:
    """A launch the coordinator queues."""
    run = launch_run(workspace, job, assets, tags)
    assert run.status == dg.DagsterRunStatus.QUEUED, run.status
    return run


def test_a_ui_launch_without_tags_gets_the_charts_retry_strategy(workspace):
    run = launch(workspace, IMPLICIT_ASSET_JOB, [NOT_RELEASED])
    assert run.tags[RETRY_STRATEGY_TAG] == chart_values()["dagsterDaemon"]["runRetries"]["strategy"]
    assert run.tags[RETRY_STRATEGY_TAG] == "FROM_ASSET_FAILURE"
    assert RELEASE_TAG not in run.tags


def test_a_launch_that_sets_its_retry_strategy_keeps_it(workspace):
    run = launch(workspace, IMPLICIT_ASSET_JOB, [NOT_RELEASED], tags={RETRY_STRATEGY_TAG: "ALL_STEPS"})
    assert run.tags[RETRY_STRATEGY_TAG] == "ALL_STEPS"


@pytest.mark.parametrize(
    ("job", "assets"),
    [
        (IMPLICIT_ASSET_JOB, [RELEASED]),  # one release model clicked alone
        (IMPLICIT_ASSET_JOB, ["release/green_promoted"]),
        (IMPLICIT_ASSET_JOB, [NOT_RELEASED, RELEASED]),
        ("release_job", None),  # the whole job, no asset selection in the run
    ],
)
def test_every_run_that_writes_blue_carries_the_release_tag_whatever_its_tags(workspace, job, assets):
    run = launch(workspace, job, assets, tags={RELEASE_TAG: "not-serialized"})
    assert run.tags[RELEASE_TAG] == RELEASE_TAG_VALUE


REEXECUTE_MUTATION = """mutation ($params: ReexecutionParams!) { launchRunReexecution(reexecutionParams: $params) {
  __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
} }"""


def test_a_ui_reexecution_without_its_parents_tags_gets_the_policy(workspace, instance):
    """The UI's "Re-execute" of a failed run of one release model, its parent's tags left off."""
    parent = launch(workspace, IMPLICIT_ASSET_JOB, [RELEASED])
    instance.report_run_failed(parent)
    params = {"parentRunId": parent.run_id, "strategy": "FROM_FAILURE", "useParentRunTags": False}
    result = execute_dagster_graphql(workspace, REEXECUTE_MUTATION, {"params": params})
    answer = result.data["launchRunReexecution"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    run = instance.get_run_by_id(answer["run"]["runId"])
    assert run.parent_run_id == parent.run_id
    assert run.tags[RETRY_STRATEGY_TAG] == "FROM_ASSET_FAILURE"
    assert run.tags[RELEASE_TAG] == RELEASE_TAG_VALUE


def test_a_run_outside_the_release_keeps_the_release_tag_it_was_given(workspace):
    """Only the platform's own value is serialized by the chart; a run that writes no blue table is
    left as launched."""
    run = launch(workspace, IMPLICIT_ASSET_JOB, [NOT_RELEASED], tags={RELEASE_TAG: "mine"})
    assert run.tags[RELEASE_TAG] == "mine"


def test_a_run_that_copies_a_lost_connection_mark_is_submitted_without_it(workspace):
    """A retry copies its parent's tags, the mark that made the parent's step failure retryable
    included; the retry itself must fail for good on a refusal or a failing test."""
    copied = {RETRY_ON_STEP_FAILURE_TAG: "true", LOST_CONNECTION_TAG: "true"}
    run = launch(workspace, IMPLICIT_ASSET_JOB, [NOT_RELEASED], tags=copied)
    assert (run.tags[RETRY_ON_STEP_FAILURE_TAG], run.tags[LOST_CONNECTION_TAG]) == ("false", "false")


def test_a_run_queued_before_an_upgrade_is_not_launched_with_the_old_image(workspace, instance):
    run = launch(workspace, IMPLICIT_ASSET_JOB, [NOT_RELEASED])
    assert image_upgraded_while_queued(run, workspace) is None
    with in_process_test_workspace(instance, DEFINITIONS, container_image=UPGRADED_IMAGE) as upgraded:
        message = image_upgraded_while_queued(run, upgraded)
    assert message is not None
    assert f"queued with the definitions of image {IMAGE}" in message
    assert f"now serves image {UPGRADED_IMAGE}" in message


def test_a_scheduled_run_gets_the_charts_retry_strategy(instance, dbt_manifest):
    """The scheduler daemon's own iteration, an hour after the example's hourly tests schedule was
    started: the run it submits carries the strategy no job set."""
    target = InProcessWorkspaceLoadTarget(InProcessCodeLocationOrigin(DEFINITIONS, container_image=IMAGE))
    with WorkspaceProcessContext(instance, target) as process_context:
        (location,) = process_context.create_request_context().get_code_location_entries().values()
        (repository,) = location.code_location.get_repositories().values()
        (schedule,) = repository.get_schedules()
        instance.start_schedule(schedule)
        an_hour_later = get_current_datetime() + datetime.timedelta(hours=1, minutes=1)
        list(launch_scheduled_runs(process_context, logging.getLogger(__name__), an_hour_later, iteration_times={}))
    (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/schedule_name": schedule.name}))
    assert run.tags[RETRY_STRATEGY_TAG] == "FROM_ASSET_FAILURE"


# Run pod config from a launch: refused beyond runLauncher.runTagK8sConfig.allowedKeys.
K8S_CONFIG_TAG = "dagster-k8s/config"
ALLOWED_KEYS_SETTING = "runLauncher.runTagK8sConfig.allowedKeys"
DECLARING_DEFINITIONS = LoadableTargetOrigin(
    module_name="tests.run_pod_config_definitions", working_directory=str(REPO_ROOT)
)


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    (record,) = records
    return record.event_log_entry.dagster_event.message


def launch_refused(workspace, job: str, assets, tags=None, run_config=None) -> tuple[dg.DagsterRun, str]:
    """launchRun answers with the run, already failed: it was never queued."""
    run = launch_run(workspace, job, assets, tags, run_config)
    assert run.status == dg.DagsterRunStatus.FAILURE, run.status
    return run, failure_message(workspace.instance, run.run_id)


@pytest.mark.parametrize(
    ("k8s_config", "key"),
    [
        ({"container_config": {"command": ["sh", "-c", "env"]}}, "container_config.command"),
        ({"container_config": {"image": "attacker:1"}}, "container_config.image"),
        ({"container_config": {"env": [{"name": "X", "value": "1"}]}}, "container_config.env"),
        ({"pod_spec_config": {"serviceAccountName": "default"}}, "pod_spec_config.service_account_name"),
    ],
)
def test_a_launch_whose_k8s_config_tag_sets_another_pod_is_refused(workspace, instance, k8s_config, key):
    tags = {
        K8S_CONFIG_TAG: json.dumps(
            {
                **k8s_config,
                "container_config": {
                    **k8s_config.get("container_config", {}),
                    "resources": {"limits": {"memory": "1Gi"}},
                },
            }
        )
    }
    run, message = launch_refused(workspace, IMPLICIT_ASSET_JOB, [NOT_RELEASED], tags)
    assert key in message and ALLOWED_KEYS_SETTING in message, message
    assert "container_config.resources," not in message.split("beyond")[0], message  # the allowed key is not named
    # Never queued, so the daemon's queue never launches it; and the retry daemon leaves it alone.
    assert not instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    assert run.tags["dagster/will_retry"] == "false"
    assert run.tags["dagster-dbt-k8s/refused"] == "true"


def test_a_launch_that_sets_only_the_containers_resources_is_queued(workspace):
    resources = {"container_config": {"resources": {"limits": {"memory": "3Gi"}}}}
    run = launch(workspace, IMPLICIT_ASSET_JOB, [NOT_RELEASED], tags={K8S_CONFIG_TAG: json.dumps(resources)})
    assert json.loads(run.tags[K8S_CONFIG_TAG]) == resources


def test_a_launch_that_reconfigures_the_dbt_resource_is_refused(workspace):
    run_config = {"resources": {"dbt": {"config": {"project_dir": "/tmp", "dbt_executable": "/bin/sh"}}}}
    _, message = launch_refused(workspace, IMPLICIT_ASSET_JOB, [NOT_RELEASED], run_config=run_config)
    assert "run config sets resources" in message, message


def test_the_definitions_own_k8s_config_is_trusted_and_a_launch_may_not_change_it(instance):
    with in_process_test_workspace(instance, DECLARING_DEFINITIONS, container_image=IMAGE) as workspace:
        job = "declared_k8s_config_job"
        declared = launch(workspace, job)  # what the UI sends: the job's own tags come with the run
        assert "DECLARED_BY" in declared.tags[K8S_CONFIG_TAG]
        changed = {"container_config": {"env": [{"name": "DECLARED_BY", "value": "a launch"}]}}
        _, message = launch_refused(workspace, job, None, tags={K8S_CONFIG_TAG: json.dumps(changed)})
        assert "container_config.env" in message, message
        # Dropping what the definitions declare is a change too (it could drop a security setting).
        _, message = launch_refused(workspace, job, None, tags={K8S_CONFIG_TAG: "{}"})
        assert "container_config.env" in message, message


def test_a_reexecution_of_a_refused_run_with_its_tags_is_refused_again(workspace, instance):
    """Retries inherit the refusal, not the pod: a re-execution that copies the parent's tags."""
    tags = {K8S_CONFIG_TAG: json.dumps({"container_config": {"command": ["sh"]}})}
    parent, _ = launch_refused(workspace, IMPLICIT_ASSET_JOB, [NOT_RELEASED], tags)
    params = {"parentRunId": parent.run_id, "strategy": "ALL_STEPS", "useParentRunTags": True}
    result = execute_dagster_graphql(workspace, REEXECUTE_MUTATION, {"params": params})
    answer = result.data["launchRunReexecution"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    run = instance.get_run_by_id(answer["run"]["runId"])
    assert run.parent_run_id == parent.run_id
    assert run.status == dg.DagsterRunStatus.FAILURE, run.status
    assert "container_config.command" in failure_message(instance, run.run_id)


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def test_the_launcher_refuses_a_run_that_reaches_it_without_the_coordinator(workspace, instance, tmp_path):
    """The second line: a run that skipped the coordinator (created and launched directly) is
    refused before the launcher asks Kubernetes for anything (its API here is unreachable)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    launcher = PlatformK8sRunLauncher(
        service_account_name="runs",
        instance_config_map="instance",
        dagster_home="/opt/dagster/dagster_home",
        job_image=IMAGE,
        load_incluster_config=False,
        kubeconfig_file=str(kubeconfig),
    )
    launcher.register_instance(instance)
    refused, _ = launch_refused(
        workspace,
        IMPLICIT_ASSET_JOB,
        [NOT_RELEASED],
        {K8S_CONFIG_TAG: json.dumps({"container_config": {"args": ["x"]}})},
    )
    with pytest.raises(RunPodConfigRefused, match=r"container_config\.args.*runLauncher\.runTagK8sConfig\.allowedKeys"):
        launcher.launch_run(LaunchRunContext(dagster_run=refused, workspace=workspace))
    allowed = launch(
        workspace,
        IMPLICIT_ASSET_JOB,
        [NOT_RELEASED],
        tags={K8S_CONFIG_TAG: json.dumps({"container_config": {"resources": {}}})},
    )
    launcher.refuse_launched_k8s_config(allowed)  # no refusal
