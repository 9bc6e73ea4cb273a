"""The pools hook: rendered from concurrency.pools.limits, ordered after the migration, and its
script really sets and prunes pools on a Dagster instance (SQLite here, PostgreSQL in the cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chart_render import CHART_DIR, REPO_ROOT, SCENARIO_IDS, SCENARIOS, load_values

from dagster import DagsterInstance


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_pools_hook_sets_every_pool_after_the_migration(render, values_file):
    rendered = render(values_file)
    limits = load_values(values_file)["concurrency"]["pools"]["limits"]
    pools_job = rendered.one("Job", "-pools")
    migrate_job = rendered.one("Job", "-migrate")
    pools_annotations = pools_job["metadata"]["annotations"]
    migrate_annotations = migrate_job["metadata"]["annotations"]
    assert set(pools_annotations["helm.sh/hook"].split(",")) == {"post-install", "post-upgrade"}
    assert set(migrate_annotations["helm.sh/hook"].split(",")) == {"post-install", "pre-upgrade"}
    assert int(pools_annotations["helm.sh/hook-weight"]) > int(migrate_annotations["helm.sh/hook-weight"])
    for job in (pools_job, migrate_job):
        assert [c["name"] for c in job["spec"]["template"]["spec"]["initContainers"]] == ["wait-for-database"]
    container = pools_job["spec"]["template"]["spec"]["containers"][0]
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert json.loads(env["DAGSTER_POOL_LIMITS"]) == limits
    script = container["command"][2]
    set_lines = [line for line in script.splitlines() if line.startswith("dagster instance concurrency set")]
    assert set_lines == [f"dagster instance concurrency set '{pool}' {limit}" for pool, limit in sorted(limits.items())]
    assert script.rstrip().endswith('python -c "$PRUNE_POOLS_SCRIPT"')


def test_migration_hook_runs_dagster_instance_migrate(render):
    container = render().one("Job", "-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["dagster", "instance", "migrate"]


def test_pools_hook_script_applies_and_prunes_on_a_real_instance(render, tmp_path):
    """Runs the rendered hook script of the pools-changed scenario (the real `dagster instance
    concurrency set` CLI, then the prune script) over the pools the defaults give, and reads the
    instance's pools back: one raised, one set to 0, one removed, one added."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    venv_bin = str(Path(sys.executable).parent)

    def run_hook(values_file: Path | None) -> None:
        container = render(values_file).one("Job", "-pools")["spec"]["template"]["spec"]["containers"][0]
        env = {v["name"]: v["value"] for v in container["env"] if "value" in v}
        result = subprocess.run(
            container["command"],
            env={
                **os.environ,
                "PATH": f"{venv_bin}:{os.environ['PATH']}",
                "DAGSTER_HOME": str(dagster_home),
                "DO_NOT_TRACK": "1",
                "DAGSTER_POOL_LIMITS": env["DAGSTER_POOL_LIMITS"],
                "PRUNE_POOLS_SCRIPT": env["PRUNE_POOLS_SCRIPT"],
            },
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def pools() -> dict[str, int]:
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            return {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for pool, limit in load_values(None)["concurrency"]["pools"]["limits"].items():
            instance.event_log_storage.set_concurrency_slots(pool, limit)
    assert pools() == {"dbt-snapshots": 1, "sales-snapshots": 1, "inventory-snapshots": 1}
    run_hook(CHART_DIR / "ci" / "pools-changed-values.yaml")
    assert pools() == {"dbt-snapshots": 2, "inventory-snapshots": 0, "marts": 4}
