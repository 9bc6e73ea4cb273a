"""The raw tables the dbt sources read, generated deterministically (seed, size)."""

import dagster as dg

from dagster_code.jobs import retried_asset_job
from dagster_code.warehouse import postgres_conninfo
from example_extras import raw_data

RAW_TABLES = ("app_events", "customers", "products", "orders", "inventory_levels")
RAW_GROUP = "raw"


class RawDataConfig(dg.Config):
    seed: int = 42
    size: int = 1


@dg.multi_asset(
    specs=[dg.AssetSpec(["raw", table], group_name=RAW_GROUP, kinds={"postgres"}) for table in RAW_TABLES],
)
def raw_tables(context: dg.AssetExecutionContext, config: RawDataConfig):
    """Replaces every raw table in one transaction, so the sources never see a partial load."""
    data = raw_data.generate(seed=config.seed, size=config.size)
    raw_data.load(postgres_conninfo(), data)
    summary = raw_data.summarize(data)
    for table in RAW_TABLES:
        yield dg.MaterializeResult(
            asset_key=["raw", table],
            metadata={"seed": config.seed, "size": config.size, "rows": summary["row_counts"][table]},
        )


raw_data_job = retried_asset_job(
    "raw_data_job",
    selection=dg.AssetSelection.groups(RAW_GROUP),
    description="Generate the raw tables the dbt sources read.",
)

defs = dg.Definitions(assets=[raw_tables], jobs=[raw_data_job])
