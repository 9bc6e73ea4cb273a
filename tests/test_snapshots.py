"""Snapshots: a changed source row is closed and a new version opened."""

from example_extras import raw_data

from tests.support import load_raw, query, run_job


def _versions(conninfo: str, table: str, key: str, value) -> list[tuple]:
    return query(
        conninfo,
        f"select dbt_valid_from, dbt_valid_to from snapshots.{table} where {key} = %s order by dbt_valid_from",
        (value,),
    )


def test_changed_source_rows_close_old_versions_and_open_new_ones(defs, warehouse, instance):
    data = load_raw(warehouse)
    assert run_job(defs, "sales_snapshots_job", instance).success
    assert run_job(defs, "inventory_snapshots_job", instance).success
    counts = raw_data.summarize(data)["row_counts"]
    assert query(warehouse, "select count(*) from snapshots.snap_customers")[0][0] == counts["customers"]

    changes = raw_data.apply_source_changes(warehouse)
    assert run_job(defs, "sales_snapshots_job", instance).success
    assert run_job(defs, "inventory_snapshots_job", instance).success

    for table, key, value in (
        ("snap_customers", "customer_id", changes.customer_id),
        ("snap_orders", "order_id", changes.order_id),
    ):
        (old_from, old_to), (new_from, new_to) = _versions(warehouse, table, key, value)
        assert old_to == new_from, table
        assert new_to is None, table
    emails = query(
        warehouse,
        "select email from snapshots.snap_customers where customer_id = %s and dbt_valid_to is null",
        (changes.customer_id,),
    )
    assert emails == [(changes.new_email,)]
    # Unchanged rows keep a single, open version.
    assert query(warehouse, "select count(*) from snapshots.snap_customers")[0][0] == counts["customers"] + 1
    assert (
        query(
            warehouse,
            "select count(*) from snapshots.snap_inventory_levels where product_id = %s and warehouse = %s",
            (changes.product_id, changes.warehouse),
        )[0][0]
        == 2
    )
