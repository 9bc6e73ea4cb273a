import dagster as dg

from dagster_code.dbt_cli import dbt_resource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"dbt": dbt_resource()})
