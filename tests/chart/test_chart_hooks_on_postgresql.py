"""The chart's hook scripts and dagster.yaml, run as rendered against a real PostgreSQL (the
suite's `pg` server): wait for the database, `dagster instance migrate`, the pools hook after an
install and after an upgrade that changes pools; then the instance loads with the chart's settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CHART_DIR, REPO_ROOT, Rendered, load_values
from dagster import DagsterInstance

DATABASE = "chart_hooks"
# Outside a cluster the launcher cannot load in-cluster config, and every dagster CLI that loads
# the instance builds the launcher: point it at a kubeconfig instead (it never connects).
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def instance_yaml_outside_a_cluster(rendered: Rendered, dagster_home: Path) -> str:
    config = yaml.safe_load(rendered.configmap_data("-instance")["dagster.yaml"])
    launcher = config["run_launcher"]["config"]
    assert launcher["load_incluster_config"] is True
    kubeconfig = dagster_home / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    launcher["load_incluster_config"] = False
    launcher["kubeconfig_file"] = str(kubeconfig)
    return yaml.safe_dump(config)


def container(rendered: Rendered, job_suffix: str, name: str) -> dict[str, Any]:
    spec = rendered.one("Job", job_suffix)["spec"]["template"]["spec"]
    return next(c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == name)


@pytest.fixture
def hook_env(pg, tmp_path) -> dict[str, str]:
    """What a hook pod sees: the env ConfigMap's contract with this server, the password from
    its 'Secret', DAGSTER_HOME holding the rendered dagster.yaml."""
    pg.create_database(DATABASE)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DAGSTER_HOME": str(dagster_home),
        "DO_NOT_TRACK": "1",
        "DAGSTER_PG_HOST": pg.host,
        "DAGSTER_PG_PORT": str(pg.port),
        "DAGSTER_PG_USER": pg.user,
        "DAGSTER_PG_PASSWORD": pg.password,
        "DAGSTER_PG_DB": DATABASE,
    }


def run_container(
    rendered: Rendered, job_suffix: str, name: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    spec = container(rendered, job_suffix, name)
    dagster_home = Path(env["DAGSTER_HOME"])
    (dagster_home / "dagster.yaml").write_text(instance_yaml_outside_a_cluster(rendered, dagster_home))
    plain = {v["name"]: v["value"] for v in spec.get("env", []) if "value" in v and v["name"] != "DAGSTER_HOME"}
    return subprocess.run(
        spec["command"], env={**env, **plain}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )


def pool_limits(env: dict[str, str]) -> dict[str, int]:
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        return {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}


def test_wait_for_database_gives_up_naming_the_value(render, hook_env):
    closed = {**hook_env, "DAGSTER_PG_PORT": "1", "DAGSTER_PG_HOST": "127.0.0.1"}
    spec = container(render(set_values={"migrate.waitForDatabaseSeconds": "10"}), "-migrate", "wait-for-database")
    plain = {v["name"]: v["value"] for v in spec["env"] if "value" in v and v["name"] != "DAGSTER_HOME"}
    result = subprocess.run(spec["command"], env={**closed, **plain}, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "after 10s (migrate.waitForDatabaseSeconds)" in result.stderr


def test_install_then_upgrade_hooks_on_postgresql(render, hook_env, monkeypatch):
    # This process reads the instance back with the same env as the hook pods.
    for key in (
        "DAGSTER_HOME",
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    ):
        monkeypatch.setenv(key, hook_env[key])
    # Installed with the kind values: the chart's default pool and the example's two.
    installed_values = CHART_DIR / "ci" / "kind-values.yaml"
    installed = render(installed_values)
    for job, name in (("-migrate", "wait-for-database"), ("-migrate", "migrate"), ("-pools", "pools")):
        result = run_container(installed, job, name, hook_env)
        assert result.returncode == 0, f"{job}/{name}:\n{result.stdout}\n{result.stderr}"
    assert pool_limits(hook_env) == load_values(installed_values)["concurrency"]["pools"]["limits"]
    assert set(pool_limits(hook_env)) == {"dbt-snapshots", "sales-snapshots", "inventory-snapshots"}

    # Upgraded without them: the kind file's pools leave unless listed again.
    upgraded = render(CHART_DIR / "ci" / "pools-changed-values.yaml")
    result = run_container(upgraded, "-pools", "pools", hook_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed pool sales-snapshots" in result.stdout
    assert pool_limits(hook_env) == {"dbt-snapshots": 2, "inventory-snapshots": 0, "marts": 4}

    # The instance the pods load: PostgreSQL storage from the env, the chart's daemon settings.
    values = load_values(CHART_DIR / "ci" / "pools-changed-values.yaml")
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "PlatformRunCoordinator"
        assert instance.run_coordinator.retry_strategy == values["dagsterDaemon"]["runRetries"]["strategy"]
        assert (
            instance.run_coordinator.dequeue_interval_seconds == values["concurrency"]["runs"]["dequeueIntervalSeconds"]
        )
        monitoring = values["dagsterDaemon"]["runMonitoring"]
        assert instance.run_monitoring_enabled is monitoring["enabled"]
        assert instance.run_monitoring_poll_interval_seconds == monitoring["pollIntervalSeconds"]
        assert instance.run_retries_enabled is values["dagsterDaemon"]["runRetries"]["enabled"]
        assert instance.run_retries_max_retries == values["dagsterDaemon"]["runRetries"]["maxRetries"]
        pool_config = instance.get_concurrency_config().pool_config
        assert pool_config.pool_granularity.value == values["concurrency"]["pools"]["granularity"]
        assert pool_config.default_pool_limit == values["concurrency"]["pools"]["defaultLimit"]
