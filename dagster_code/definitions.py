"""The code location: the definitions of the dbt project at DBT_PROJECT_DIR."""

import dagster as dg

from dagster_code.project import dbt_project
from dagster_code.project_definitions import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(dbt_project())
