"""A dagster.yaml for local runs, rendered from the Helm chart's values.yaml.

The chart's values are the one place that defines pools, run retries and run monitoring;
local runs (`make dev`, the fast test suite) read the same values so they behave like the
deployment. What differs is only what must: PostgreSQL on loopback and the default run
launcher (run workers are local processes instead of Kubernetes Jobs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dagster_code.run_coordinator import RELEASE_TAG

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_VALUES = REPO_ROOT / "charts" / "dagster-dbt-k8s" / "values.yaml"
# The chart's run-tag limit that no values drop (templates/helpers/_instance.tpl).
RELEASE_LIMIT = {"key": RELEASE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def chart_values() -> dict[str, Any]:
    return yaml.safe_load(CHART_VALUES.read_text())


def pool_limits(values: Mapping[str, Any] | None = None) -> dict[str, int]:
    values = values or chart_values()
    return dict(values["concurrency"]["pools"]["limits"])


def instance_config(
    postgres: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
    run_monitoring_overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`postgres` holds hostname, port, username, password and db_name of Dagster's storage."""
    values = values or chart_values()
    pools = values["concurrency"]["pools"]
    runs = values["concurrency"]["runs"]
    retries = values["dagsterDaemon"]["runRetries"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    run_monitoring = {
        "enabled": monitoring["enabled"],
        "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        "start_timeout_seconds": monitoring["startTimeoutSeconds"],
        "cancel_timeout_seconds": monitoring["cancelTimeoutSeconds"],
        "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
        **(run_monitoring_overrides or {}),
    }
    return {
        "storage": {
            "custom": {
                "module": "dagster_code.storage",
                "class": "PooledPostgresStorage",
                "config": {"postgres_db": dict(postgres)},
            }
        },
        "run_coordinator": {
            "module": "dagster_code.run_coordinator",
            "class": "PlatformRunCoordinator",
            "config": {
                "dequeue_interval_seconds": runs["dequeueIntervalSeconds"],
                "retry_strategy": retries["strategy"],
                "allowed_run_tag_k8s_config_keys": list(values["runLauncher"]["runTagK8sConfig"]["allowedKeys"]),
            },
        },
        "concurrency": {
            "pools": {"granularity": pools["granularity"], "default_limit": pools["defaultLimit"]},
            "runs": {
                "max_concurrent_runs": runs["maxConcurrentRuns"],
                "tag_concurrency_limits": [RELEASE_LIMIT, *(runs.get("tagConcurrencyLimits") or [])],
            },
        },
        "run_retries": {
            "enabled": retries["enabled"],
            "max_retries": retries["maxRetries"],
            "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"],
        },
        "run_monitoring": run_monitoring,
        "telemetry": {"enabled": False},
    }


def write_dagster_home(dagster_home: Path, config: Mapping[str, Any]) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def apply_pool_limits(instance, limits: Mapping[str, int]) -> None:
    """What the chart's pools hook does with `dagster instance concurrency set`."""
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
