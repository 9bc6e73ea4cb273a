"""The project's DbtProjectComponent: dagster_dbt.DbtProjectComponent plus its conventions.

A subclass rather than YAML `translation:` templates, because code versions need the whole
manifest (macros, ephemeral parents) and a release needs run-time vars (its id).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster.components.utils.defs_state import DefsStateConfig
from dagster_dbt import DbtCliResource, DbtProject, DbtProjectComponent
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from dagster_code.release_vars import release_dbt_vars
from dagster_code.retries import (
    lost_warehouse_connection,
    mark_retryable_after_lost_connection,
    restore_step_failure_policy,
)
from dagster_code.translator import apply_project_conventions


class AnalyticsDbtProjectComponent(DbtProjectComponent):
    @property
    def defs_state_config(self) -> DefsStateConfig:
        # Several components share one dbt project; the op name tells their states apart.
        config = super().defs_state_config
        return DefsStateConfig(
            key=f"{config.key}[{self.op.name if self.op else ''}]",
            management_type=config.management_type,
            refresh_if_dev=config.refresh_if_dev,
        )

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        return apply_project_conventions(spec, manifest, unique_id)

    def get_cli_args(self, context: dg.AssetExecutionContext) -> list[str]:
        return [*super().get_cli_args(context), "--vars", json.dumps(release_dbt_vars(context))]

    def execute(self, context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator:
        restore_step_failure_policy(context)
        try:
            yield from super().execute(context, dbt)
        except DagsterDbtCliRuntimeError as error:
            if lost_warehouse_connection(str(error)):
                context.log.warning(
                    "dbt lost its connection to the warehouse (not a model or test failure): this "
                    "run's failure is marked retryable, so its retry builds what is missing."
                )
                mark_retryable_after_lost_connection(context)
            raise
