"""Synthetic raw data for the analytics dbt project.

The same (seed, size) always yields the same rows, so tests can compare the warehouse against
totals computed here (`summarize`) instead of hard-coding numbers. This module has no Dagster
imports: Dagster assets, tests and the CLI all call the same plain functions.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import psycopg

# The first day of app events; the microbatch model's `begin` and the Dagster daily partitions
# must start on this same day.
EVENTS_START = date(2024, 1, 1)
# Events lie in [EVENTS_START, EVENTS_START + EVENTS_DAYS).
EVENTS_DAYS = 14

# Rows per unit of `size`.
CUSTOMERS_PER_SIZE = 50
PRODUCTS_PER_SIZE = 20
ORDERS_PER_SIZE = 300
EVENTS_PER_SIZE = 3000

RAW_SCHEMA = "raw"
COUNTRIES = ("DE", "FR", "GB", "NL", "US")
CATEGORIES = ("apparel", "books", "electronics", "garden", "toys")
WAREHOUSES = ("east", "north", "west")
# Units per warehouse as (min, max): out of stock, scarce, stocked.
STOCK_PROFILES = ((0, 0), (0, 3), (10, 200))
STOCK_PROFILE_WEIGHTS = (1, 2, 7)
ORDER_STATUSES = ("placed", "shipped", "completed", "returned")
# Weights of ORDER_STATUSES: most orders complete, a few come back.
ORDER_STATUS_WEIGHTS = (15, 20, 55, 10)
EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "checkout", "purchase")
EVENT_TYPE_WEIGHTS = (50, 25, 12, 8, 5)

# Column definitions, in insert order. `load` creates the tables from these.
TABLE_DDL: dict[str, str] = {
    "app_events": """
        event_id bigint not null,
        event_time timestamp not null,
        user_id int not null,
        event_type text not null
    """,
    "customers": """
        customer_id int primary key,
        name text not null,
        email text not null,
        country text not null,
        updated_at timestamp not null
    """,
    "products": """
        product_id int primary key,
        name text not null,
        category text not null,
        price numeric(10, 2) not null,
        updated_at timestamp not null
    """,
    # No primary key on purpose: a test makes a release fail by inserting a duplicate order_id.
    "orders": """
        order_id int not null,
        customer_id int not null,
        product_id int not null,
        quantity int not null,
        status text not null,
        ordered_at timestamp not null,
        updated_at timestamp not null
    """,
    "inventory_levels": """
        product_id int not null,
        warehouse text not null,
        quantity int not null,
        updated_at timestamp not null,
        primary key (product_id, warehouse)
    """,
}


def _column_names(ddl: str) -> tuple[str, ...]:
    """Column names of a TABLE_DDL entry, in order (table constraints skipped)."""
    lines = (line.strip() for line in ddl.strip().splitlines())
    return tuple(line.split()[0] for line in lines if not line.startswith("primary key"))


TABLE_COLUMNS: dict[str, tuple[str, ...]] = {name: _column_names(ddl) for name, ddl in TABLE_DDL.items()}

Row = tuple[Any, ...]


@dataclass(frozen=True)
class RawData:
    """The generated rows per raw table (tuples in `TABLE_COLUMNS` order) and how they were made."""

    seed: int
    size: int
    tables: dict[str, list[Row]] = field(default_factory=dict)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Rows of `table` as dicts, for readable assertions in tests."""
        columns = TABLE_COLUMNS[table]
        return [dict(zip(columns, row, strict=True)) for row in self.tables[table]]


@dataclass(frozen=True)
class SourceChanges:
    """What `apply_source_changes` changed: old and new values, keyed like the snapshots."""

    customer_id: int
    old_email: str
    new_email: str
    order_id: int
    old_status: str
    new_status: str
    product_id: int
    warehouse: str
    old_quantity: int
    new_quantity: int
    changed_at: datetime


def _timestamp(rng: random.Random, start: datetime, seconds: int) -> datetime:
    return start + timedelta(seconds=rng.randrange(seconds))


def generate(seed: int = 42, size: int = 1) -> RawData:
    """Build every raw table in memory, deterministically from `seed`, scaled linearly by `size`."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    rng = random.Random(seed)
    events_start = datetime.combine(EVENTS_START, time())
    window_seconds = EVENTS_DAYS * 24 * 3600
    # Dimension rows were last touched before the events window opens.
    dimensions_at = events_start - timedelta(days=7)

    n_customers = CUSTOMERS_PER_SIZE * size
    customers = [
        (
            customer_id,
            f"Customer {customer_id}",
            f"customer{customer_id}@example.com",
            rng.choice(COUNTRIES),
            _timestamp(rng, dimensions_at, 7 * 24 * 3600),
        )
        for customer_id in range(1, n_customers + 1)
    ]

    n_products = PRODUCTS_PER_SIZE * size
    products = [
        (
            product_id,
            f"Product {product_id}",
            rng.choice(CATEGORIES),
            Decimal(rng.randrange(199, 19999)) / 100,
            _timestamp(rng, dimensions_at, 7 * 24 * 3600),
        )
        for product_id in range(1, n_products + 1)
    ]

    orders = []
    for order_id in range(1, ORDERS_PER_SIZE * size + 1):
        ordered_at = _timestamp(rng, events_start, window_seconds)
        orders.append(
            (
                order_id,
                rng.randint(1, n_customers),
                rng.randint(1, n_products),
                rng.randint(1, 5),
                rng.choices(ORDER_STATUSES, weights=ORDER_STATUS_WEIGHTS)[0],
                ordered_at,
                ordered_at + timedelta(hours=rng.randint(0, 48)),
            )
        )

    # Each product gets a stock profile, so mart_inventory_health has every status to show.
    inventory_levels = []
    for product_id in range(1, n_products + 1):
        low, high = rng.choices(STOCK_PROFILES, weights=STOCK_PROFILE_WEIGHTS)[0]
        for warehouse in WAREHOUSES:
            inventory_levels.append(
                (product_id, warehouse, rng.randint(low, high), _timestamp(rng, events_start, window_seconds))
            )

    event_times = sorted(_timestamp(rng, events_start, window_seconds) for _ in range(EVENTS_PER_SIZE * size))
    app_events = [
        (
            event_id,
            event_time,
            rng.randint(1, n_customers),
            rng.choices(EVENT_TYPES, weights=EVENT_TYPE_WEIGHTS)[0],
        )
        for event_id, event_time in enumerate(event_times, start=1)
    ]

    return RawData(
        seed=seed,
        size=size,
        tables={
            "app_events": app_events,
            "customers": customers,
            "products": products,
            "orders": orders,
            "inventory_levels": inventory_levels,
        },
    )


def summarize(data: RawData) -> dict[str, Any]:
    """Totals the dbt marts must reproduce; tests compare the warehouse against these.

    `total_revenue` is sum(quantity * price) over orders whose status is not 'returned', which is
    what sum(fct_orders.revenue), sum(dim_customers.lifetime_revenue) and
    sum(dim_products.revenue) must each equal.
    """
    prices = {row["product_id"]: row["price"] for row in data.rows("products")}
    orders = data.rows("orders")
    total_revenue = sum(
        (o["quantity"] * prices[o["product_id"]] for o in orders if o["status"] != "returned"),
        Decimal("0.00"),
    )
    events_per_day = Counter(e["event_time"].date().isoformat() for e in data.rows("app_events"))
    return {
        "row_counts": {table: len(rows) for table, rows in data.tables.items()},
        "total_revenue": total_revenue,
        "orders_per_status": dict(sorted(Counter(o["status"] for o in orders).items())),
        "events_per_day": dict(sorted(events_per_day.items())),
        "events_per_type": dict(sorted(Counter(e["event_type"] for e in data.rows("app_events")).items())),
        "customers_per_country": dict(sorted(Counter(c["country"] for c in data.rows("customers")).items())),
        "total_inventory_quantity": sum(i["quantity"] for i in data.rows("inventory_levels")),
    }


def load(conninfo: str, data: RawData) -> None:
    """Create schema `raw` and its tables if missing, and replace their rows in one transaction.

    Tables are truncated, not dropped, so views that dbt built on them survive a reload, and a
    reader never sees a half-loaded set of tables.
    """
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(f"create schema if not exists {RAW_SCHEMA}")
        for table, ddl in TABLE_DDL.items():
            cur.execute(f"create table if not exists {RAW_SCHEMA}.{table} ({ddl})")
        cur.execute("truncate " + ", ".join(f"{RAW_SCHEMA}.{table}" for table in TABLE_DDL))
        for table, rows in data.tables.items():
            columns = ", ".join(TABLE_COLUMNS[table])
            with cur.copy(f"copy {RAW_SCHEMA}.{table} ({columns}) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)


def apply_source_changes(conninfo: str) -> SourceChanges:
    """Change one customer's email, one order's status and one inventory quantity, for snapshots.

    The changed rows are the lowest keys (for the order, the lowest non-returned one, so revenue
    totals stay as `summarize` computed them). All get `updated_at` one day after the latest
    `updated_at` of the three tables, so a timestamp-strategy snapshot closes the old version and
    opens a new one. Applying it again changes the same rows again (new values derive from the current
    ones), so every call yields exactly one new version per changed row.
    """
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(
            f"""
            select greatest(
                (select max(updated_at) from {RAW_SCHEMA}.customers),
                (select max(updated_at) from {RAW_SCHEMA}.orders),
                (select max(updated_at) from {RAW_SCHEMA}.inventory_levels)
            ) + interval '1 day'
            """
        )
        (changed_at,) = cur.fetchone()

        cur.execute(f"select customer_id, email from {RAW_SCHEMA}.customers order by customer_id limit 1")
        customer_id, old_email = cur.fetchone()
        new_email = "changed." + old_email
        cur.execute(
            f"update {RAW_SCHEMA}.customers set email = %s, updated_at = %s where customer_id = %s",
            (new_email, changed_at, customer_id),
        )

        cur.execute(
            f"select order_id, status from {RAW_SCHEMA}.orders where status <> 'returned' order by order_id limit 1"
        )
        order_id, old_status = cur.fetchone()
        forward = [status for status in ORDER_STATUSES if status != "returned"]
        new_status = forward[(forward.index(old_status) + 1) % len(forward)]
        cur.execute(
            f"update {RAW_SCHEMA}.orders set status = %s, updated_at = %s where order_id = %s",
            (new_status, changed_at, order_id),
        )

        cur.execute(
            f"select product_id, warehouse, quantity from {RAW_SCHEMA}.inventory_levels "
            "order by product_id, warehouse limit 1"
        )
        product_id, warehouse, old_quantity = cur.fetchone()
        new_quantity = old_quantity + 10
        cur.execute(
            f"update {RAW_SCHEMA}.inventory_levels set quantity = %s, updated_at = %s "
            "where product_id = %s and warehouse = %s",
            (new_quantity, changed_at, product_id, warehouse),
        )

    return SourceChanges(
        customer_id=customer_id,
        old_email=old_email,
        new_email=new_email,
        order_id=order_id,
        old_status=old_status,
        new_status=new_status,
        product_id=product_id,
        warehouse=warehouse,
        old_quantity=old_quantity,
        new_quantity=new_quantity,
        changed_at=changed_at,
    )
