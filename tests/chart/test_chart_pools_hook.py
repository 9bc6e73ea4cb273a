"""The hooks as rendered: the pools hook from concurrency.pools.limits, ordered after the
migration hook (test_chart_hooks_on_postgresql.py runs them on a real PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from chart_render import SCENARIO_IDS, SCENARIOS, load_values


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
        # Last: the initContainers of podDefaults/migrate.pod (a database proxy) run before it.
        assert job["spec"]["template"]["spec"]["initContainers"][-1]["name"] == "wait-for-database"
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
