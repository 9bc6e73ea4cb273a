"""The rendered dagster.yaml against Dagster's own schema, and against the values it comes from."""

from __future__ import annotations

import pytest
import yaml
from chart_render import NAMESPACE, SCENARIO_IDS, SCENARIOS, load_values
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import class_from_code_pointer
from dagster_postgres import PostgresEventLogStorage

from dagster_code.local.instance import instance_config as local_instance_config
from dagster_code.run_coordinator import RELEASE_TAG, PlatformRunCoordinator
from dagster_code.run_launcher import PlatformK8sRunLauncher
from dagster_code.storage import PooledPostgresStorage

DB_ENV = {
    "DAGSTER_PG_HOST": "db.example",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_PG_DB": "dagster",
}


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_instance_config_validates_with_dagsters_schema(render, values_file, tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text(render(values_file).configmap_data("-instance")["dagster.yaml"])
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert config["telemetry"] == {"enabled": False}

    # Every configurable class named in it exists and accepts its config.
    for key in ("run_coordinator", "run_launcher", "compute_logs"):
        cls = class_from_code_pointer(config[key]["module"], config[key]["class"])
        result = process_config(cls.config_type(), config[key].get("config") or {})
        assert result.success, f"{key}: {result.errors}"
    assert config["run_coordinator"]["class"] == PlatformRunCoordinator.__name__
    assert config["run_launcher"]["class"] == PlatformK8sRunLauncher.__name__
    storage = config["storage"]["custom"]
    assert class_from_code_pointer(storage["module"], storage["class"]) is PooledPostgresStorage

    # The storage reads every connection setting, the password included, from the env; an
    # external server's libpq parameters are the only literal values.
    values = load_values(values_file)
    params = {} if values["postgresql"]["enabled"] else values["externalPostgresql"]["params"]
    postgres_db = config["storage"]["custom"]["config"]["postgres_db"]
    assert postgres_db == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
        **({"params": params} if params else {}),
    }
    for name, value in DB_ENV.items():
        monkeypatch.setenv(name, value)
    result = process_config(PostgresEventLogStorage.config_type(), {"postgres_db": postgres_db})
    assert result.success, result.errors
    assert result.value["postgres_db"]["password"] == DB_ENV["DAGSTER_PG_PASSWORD"]
    assert result.value["postgres_db"]["params"] == params


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_local_instance_config_equals_the_charts(render, values_file):
    """`make dev` and the fast suite map the same values to dagster.yaml in Python
    (dagster_code/local/instance.py): pools, runs, retries and monitoring must come out the same."""
    values = load_values(values_file)
    config = render(values_file).instance_config()
    local = local_instance_config(postgres={}, values=values)
    for section in ("run_coordinator", "concurrency", "run_retries", "run_monitoring"):
        assert config[section] == local[section], section
    # Both could map a value wrongly the same way: a few read back from the values themselves.
    assert config["concurrency"]["pools"]["default_limit"] == values["concurrency"]["pools"]["defaultLimit"]
    assert config["run_retries"]["max_retries"] == values["dagsterDaemon"]["runRetries"]["maxRetries"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert config["run_monitoring"]["poll_interval_seconds"] == monitoring["pollIntervalSeconds"]
    # Run limits live in `concurrency.runs` only (Dagster refuses them in both places); the run
    # coordinator is given how often its queue is read and the retry strategy of every run.
    runs = values["concurrency"]["runs"]
    assert config["run_coordinator"]["config"] == {
        "dequeue_interval_seconds": runs["dequeueIntervalSeconds"],
        "retry_strategy": values["dagsterDaemon"]["runRetries"]["strategy"],
        "allowed_run_tag_k8s_config_keys": values["runLauncher"]["runTagK8sConfig"]["allowedKeys"],
    }


def test_a_launch_may_set_only_the_run_containers_resources_by_default(render):
    config = render().instance_config()["run_coordinator"]["config"]
    assert config["allowed_run_tag_k8s_config_keys"] == ["container_config.resources"]


def test_the_run_tag_allowlist_is_rendered_as_given(render):
    set_values = {"runLauncher.runTagK8sConfig.allowedKeys": "{container_config.resources,pod_spec_config.tolerations}"}
    config = render(set_values=set_values).instance_config()["run_coordinator"]["config"]
    assert config["allowed_run_tag_k8s_config_keys"] == ["container_config.resources", "pod_spec_config.tolerations"]


def test_an_empty_run_tag_allowlist_allows_nothing(render, tmp_path):
    """`allowedKeys: []`: the coordinator is given an empty list, not the chart's default."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text("runLauncher:\n  runTagK8sConfig:\n    allowedKeys: []\n")
    config = render(values_file).instance_config()
    assert config["run_coordinator"]["config"]["allowed_run_tag_k8s_config_keys"] == []


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_releases_run_one_at_a_time_whatever_the_values(render, values_file):
    """The release limit comes first and is the chart's own; the values' limits follow it."""
    limits = render(values_file).instance_config()["concurrency"]["runs"]["tag_concurrency_limits"]
    release = {"key": RELEASE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert limits == [release, *(load_values(values_file)["concurrency"]["runs"]["tagConcurrencyLimits"] or [])]


def test_kind_values_shorten_run_monitoring(render):
    from chart_render import CHART_DIR

    config = render(CHART_DIR / "ci" / "kind-values.yaml").instance_config()["run_monitoring"]
    assert config["poll_interval_seconds"] <= 5
    assert config["free_slots_after_run_end_seconds"] <= 5
    defaults = render().instance_config()["run_monitoring"]
    assert defaults["poll_interval_seconds"] > config["poll_interval_seconds"]


def test_additional_instance_config_is_merged_beside_the_charts_keys(render):
    from chart_render import CHART_DIR

    chart = render().instance_config()
    added = render(CHART_DIR / "ci" / "additional-instance-config-values.yaml").instance_config()
    assert added["retention"]["schedule"] == {"purge_after_days": 90}
    assert added["sensors"] == {"use_threads": True, "num_workers": 4}
    assert {key: value for key, value in added.items() if key not in {"retention", "sensors", "schedules"}} == chart
    # A key the chart does not set, inside a section it does: added next to the chart's keys.
    limited = render(set_values={"additionalInstanceConfig.run_monitoring.max_runtime_seconds": "7200"})
    monitoring = limited.instance_config()["run_monitoring"]
    assert monitoring == {**chart["run_monitoring"], "max_runtime_seconds": 7200}


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_run_launcher_config(render, values_file):
    values = load_values(values_file)
    rendered = render(values_file)
    launcher = rendered.instance_config()["run_launcher"]["config"]
    image = values["codeLocation"]["image"]
    assert launcher["job_namespace"] == NAMESPACE
    assert launcher["job_image"] == f"{image['repository']}:{image['tag']}"
    assert launcher["image_pull_policy"] == "IfNotPresent"
    assert launcher["load_incluster_config"] is True
    assert launcher["dagster_home"] == values["dagsterHome"]
    assert launcher["instance_config_map"] == rendered.one("ConfigMap", "-instance")["metadata"]["name"]
    assert launcher["env_config_maps"] == [rendered.one("ConfigMap", "-env")["metadata"]["name"]]
    assert launcher["resources"] == values["runLauncher"]["resources"]
    assert launcher["run_k8s_config"]["job_spec_config"]["backoffLimit"] == 0
    assert launcher["run_k8s_config"]["job_spec_config"]["podReplacementPolicy"] == "Failed"
    assert (
        launcher["run_k8s_config"]["job_spec_config"]["ttlSecondsAfterFinished"]
        == values["runLauncher"]["jobTtlSecondsAfterFinished"]
    )
    snowflake = values["warehouse"]["target"] == "snowflake"
    assert launcher.get("env_secrets") == ([values["warehouse"]["snowflake"]["existingSecret"]] if snowflake else None)
    result = process_config(PlatformK8sRunLauncher.config_type(), launcher)
    assert result.success, result.errors


def test_workspace_points_at_the_code_location_service(render):
    rendered = render()
    workspace = yaml.safe_load(rendered.configmap_data("-workspace")["workspace.yaml"])
    service = rendered.component_service("code-location")
    assert workspace == {
        "load_from": [
            {
                "grpc_server": {
                    "host": service["metadata"]["name"],
                    "port": service["spec"]["ports"][0]["port"],
                    "location_name": load_values(None)["codeLocation"]["name"],
                }
            }
        ]
    }
