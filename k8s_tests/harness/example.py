"""The example dbt project's names (dbt_project/), for the cluster suites and the benchmark.

Names the platform derives (the release job, snapshot pools' jobs and ops, the models' op, the
release assets, the slow-model run tag) are read from the example's configuration (dagster.yml,
the `+meta` of dbt_project.yml) and named by dagster_code itself, so a renamed pool or job
changes them here too. The example's own dbt nodes are named once, here. Its marts and release
schemas are in tests/support.py, shared with the fast suite.
"""

from __future__ import annotations

from typing import Any

import yaml

from dagster_code.assets import MODELS_OP
from dagster_code.config import JOB_KEY, POOL_KEY, load_project_config
from dagster_code.nodes import SnapshotPool
from dagster_code.project import DEFAULT_DBT_PROJECT_DIR
from dagster_code.translator import BLUE_PREPARED_KEY, GREEN_PROMOTED_KEY
from k8s_tests.harness.release import ReleaseProject
from tests.support import MARTS

EXAMPLE_PROJECT_DIR = DEFAULT_DBT_PROJECT_DIR
# The dbt var the example's sleep_seconds pre-hooks read; dagster.yml takes it from a run tag.
SLOW_MODEL_VAR = "slow_model_seconds"
# The example's model that sleeps under the slow-model tag, and a staging model built before it.
SLOW_MODEL = "int_orders_enriched"
STAGING_ORDERS = "stg_shop__orders"
# Every staging model (dbt_project/models/staging): none is downstream of the slow model, so dbt's
# other threads build them, and run their tests, while it sleeps.
STAGING_MODELS = frozenset(path.stem for path in (DEFAULT_DBT_PROJECT_DIR / "models" / "staging").glob("*.sql"))
# The sales domain's snapshots: snap_orders sleeps under the slow-model tag; snap_customers (no
# pre-hook) is done by then.
ORDERS_SNAPSHOT = "snap_orders"
CUSTOMERS_SNAPSHOT = "snap_customers"
SALES_SNAPSHOTS = {CUSTOMERS_SNAPSHOT, ORDERS_SNAPSHOT}
SLOW_SNAPSHOT = ORDERS_SNAPSHOT
# Unique key of each sales snapshot, to count its current versions.
SNAPSHOT_KEYS = {CUSTOMERS_SNAPSHOT: "customer_id", ORDERS_SNAPSHOT: "order_id"}


def _snapshots_config() -> dict[str, Any]:
    """The `snapshots:` folder configuration of the example's dbt_project.yml."""
    project = yaml.safe_load((EXAMPLE_PROJECT_DIR / "dbt_project.yml").read_text())
    return project["snapshots"][project["name"]]


def _snapshot_pool(domain: str) -> SnapshotPool:
    """The pool of one snapshot folder (`+meta: dagster_pool` in dbt_project.yml), named by the
    platform (its job and op)."""
    return SnapshotPool(pool=_snapshots_config()[domain]["+meta"][POOL_KEY], unique_ids=())


# The example's microbatch model (daily partitions), and the job of its partitions (`meta:
# dagster_job` of its properties file).
MICROBATCH_MODEL = "fct_app_events_microbatch"
_MICROBATCH_PROPERTIES = yaml.safe_load(
    (EXAMPLE_PROJECT_DIR / "models" / "events" / f"{MICROBATCH_MODEL}.yml").read_text()
)
MICROBATCH_JOB = _MICROBATCH_PROPERTIES["models"][0]["config"]["meta"][JOB_KEY]


_CONFIG = load_project_config(EXAMPLE_PROJECT_DIR)
RELEASE_JOB = _CONFIG.release.job
# The dbt selection the release builds (dagster.yml's `release.select`).
RELEASE_SELECT = _CONFIG.release.select
SLOW_MODEL_TAG = _CONFIG.vars_from_run_tags[SLOW_MODEL_VAR]
# Megabytes the slow model's pre-hook holds in dbt's process (dbt_project/macros/memory_hog.sql).
MEMORY_HOG_TAG = _CONFIG.vars_from_run_tags["memory_hog_mb"]
MODELS_STEP = MODELS_OP
BLUE_PREPARED = BLUE_PREPARED_KEY.to_user_string()
GREEN_PROMOTED = GREEN_PROMOTED_KEY.to_user_string()
# Built before the slow model's pre-hook starts sleeping (tests/test_retries.py's DONE_BEFORE_KILL).
DONE_BEFORE_FAULT = {BLUE_PREPARED, STAGING_ORDERS}
EXAMPLE_RELEASE = ReleaseProject(
    job=RELEASE_JOB,
    pause_tag=SLOW_MODEL_TAG,
    paused_model=SLOW_MODEL,
    built_before_pause=frozenset(DONE_BEFORE_FAULT | STAGING_MODELS),
    marts=MARTS,
    marts_stamped=True,
)

_SALES = _snapshot_pool("sales")
_INVENTORY = _snapshot_pool("inventory")
SALES_POOL = _SALES.pool
SALES_JOB = _SALES.job_name
SALES_STEP = _SALES.op_name
INVENTORY_JOB = _INVENTORY.job_name
INVENTORY_STEP = _INVENTORY.op_name
# The schema dbt builds the snapshots in (dbt_project.yml's `+schema` of the snapshots).
SNAPSHOT_SCHEMA = _snapshots_config()["+schema"]
