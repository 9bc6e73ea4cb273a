"""The project's DbtProjectComponent: dagster_dbt.DbtProjectComponent plus its conventions.

A subclass rather than YAML `translation:` templates, because code versions need the whole
manifest (macros, ephemeral parents) and a release needs run-time vars (its id).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster.components.utils.defs_state import DefsStateConfig
from dagster_dbt import DbtProject, DbtProjectComponent

from dagster_code.release_vars import release_dbt_vars
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
