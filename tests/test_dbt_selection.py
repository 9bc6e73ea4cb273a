"""The platform's indexed `fqn` selection (dagster_code.dbt_selection) selects exactly what dbt's
own search selects, for every name, name prefix and version of every node of two projects: the
example, and one whose names collide (a folder and a model of one name, a model named like its
project and like a folder, versioned models)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from dbt.cli.main import dbtRunner
from dbt.contracts.graph.manifest import Manifest
from dbt.graph.selector_methods import QualifiedNameSelectorMethod

from dagster_code.dbt_selection import DBT_SEARCH, indexed_search
from tests.conftest import DBT_PROJECT_DIR, WAREHOUSE_DATABASE, warehouse_env

COLLIDING_PROJECT = {
    "dbt_project.yml": """
        name: colliding
        version: "1.0"
        profile: colliding
        models:
          colliding:
            +materialized: view
    """,
    "profiles.yml": """
        colliding:
          target: dev
          outputs:
            dev: {type: postgres, host: 127.0.0.1, port: 5432, user: u, pass: p, dbname: d, schema: s, threads: 1}
    """,
    "models/staging/orders.sql": "select 1 as id",
    # A folder named like the model beside it: `colliding.staging.orders` selects both.
    "models/staging/orders/order_items.sql": "select id from {{ ref('orders') }}",
    # A model named like a folder, and one named like the project.
    "models/marts/staging.sql": "select id from {{ ref('order_items') }}",
    "models/marts/colliding.sql": "select id from {{ ref('staging') }}",
    "models/marts/customers_v1.sql": "select 1 as id",
    "models/marts/customers_v2.sql": "select 2 as id",
    "models/marts/schema.yml": """
        version: 2
        models:
          - name: customers
            latest_version: 2
            columns:
              - name: id
                data_tests: [not_null]
            versions:
              - v: 1
              - v: 2
          - name: staging
            columns:
              - name: id
                data_tests: [unique]
        exposures:
          - name: dashboard
            type: dashboard
            owner: {email: team@example.com}
            depends_on: ["ref('colliding')"]
    """,
    "snapshots/orders_snapshot.yml": """
        snapshots:
          - name: orders_snapshot
            relation: ref('orders')
            config: {unique_key: id, strategy: check, check_cols: all}
    """,
    "tests/no_negative_ids.sql": "select * from {{ ref('orders') }} where id < 0",
}


def _parsed(project_dir: Path, target_path: Path) -> Manifest:
    result = dbtRunner().invoke(
        [
            "parse",
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(project_dir),
            "--target-path",
            str(target_path),
        ]
    )
    assert result.success, result.exception
    return result.result


def _write_colliding_project(root: Path) -> Path:
    for relative, text in COLLIDING_PROJECT.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def _selectors(manifest: Manifest) -> set[str]:
    """Every selector a node answers to without wildcards, a few that none answers to, and a few
    with wildcards (which go to dbt's search)."""
    selectors = {"", "nope", "colliding.nope", "staging.nope.deeper", "orders*", "*.orders", "colliding.marts.*"}
    method = QualifiedNameSelectorMethod(manifest, None, [])
    for _, node in method.non_source_nodes(set(manifest.nodes) | set(manifest.exposures) | set(manifest.unit_tests)):
        for fqn in (node.fqn, node.fqn[1:]):
            parts = [part for segment in fqn for part in segment.split(".")]
            selectors.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
            selectors.update({*fqn[-2:], "_".join(fqn[-2:]), ".".join(fqn[-2:])})
    return selectors


def _assert_same_selection(manifest: Manifest) -> dict[str, set[str]]:
    method = QualifiedNameSelectorMethod(manifest, None, [])
    included = {*manifest.nodes, *manifest.sources, *manifest.exposures, *manifest.unit_tests}
    selected = {}
    for selector in sorted(_selectors(manifest)):
        by_dbt = set(DBT_SEARCH(method, included, selector))
        assert set(indexed_search(method, included, selector)) == by_dbt, selector
        selected[selector] = by_dbt
    return selected


def test_colliding_names_select_what_dbt_selects(tmp_path: Path):
    manifest = _parsed(_write_colliding_project(tmp_path / "colliding"), tmp_path / "target")

    selected = _assert_same_selection(manifest)

    # The collisions were there to be resolved: a name prefix, a model's name, a version.
    assert selected["colliding.staging.orders"] == {
        "model.colliding.orders",
        "model.colliding.order_items",
    }
    assert selected["staging"] >= {"model.colliding.staging", "model.colliding.orders"}
    assert selected["customers"] == {"model.colliding.customers.v1", "model.colliding.customers.v2"}
    assert selected["customers_v1"] == {"model.colliding.customers.v1"}
    assert selected["dashboard"] == {"exposure.colliding.dashboard"}
    assert selected["nope"] == set()
    # Wildcards go to dbt's own search.
    assert selected["colliding.marts.*"] >= {"model.colliding.staging", "model.colliding.colliding"}


def test_example_project_selects_what_dbt_selects(tmp_path: Path, dbt_manifest: Path, pg, monkeypatch):
    for key, value in warehouse_env(pg, WAREHOUSE_DATABASE).items():
        monkeypatch.setenv(key, value)
    manifest = _parsed(DBT_PROJECT_DIR, tmp_path / "target")

    selected = _assert_same_selection(manifest)

    assert len([selector for selector, nodes in selected.items() if nodes]) > len(manifest.nodes)
