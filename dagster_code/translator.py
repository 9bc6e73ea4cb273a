"""How dbt nodes become Dagster assets: groups, macro-aware code versions, release lineage.

One translator, built from the project's plan, serves every `@dbt_assets` of the project, so
every dbt asset follows the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject

from dagster_code.code_versions import CodeVersions
from dagster_code.nodes import ProjectPlan
from dagster_code.run_coordinator import RELEASE_TAG, RELEASE_TAG_VALUE

BLUE_PREPARED_KEY = dg.AssetKey(["release", "blue_prepared"])
GREEN_PROMOTED_KEY = dg.AssetKey(["release", "green_promoted"])


class ProjectDbtTranslator(DagsterDbtTranslator):
    def __init__(self, plan: ProjectPlan):
        super().__init__()
        self._plan = plan
        self._first_release_models = plan.first_release_models()
        self._code_versions = CodeVersions(plan.manifest)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return self._plan.groups.get(dbt_resource_props["unique_id"])

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id not in self._plan.groups:
            return spec
        spec = spec.replace_attributes(
            # A model's key is its name: the schema it builds in (blue) is not where it is read.
            key=dg.AssetKey([manifest["nodes"][unique_id]["name"]]),
            group_name=self._plan.groups[unique_id],
            code_version=self._code_versions.of(unique_id),
        )
        # The first release models wait for blue to be prepared from green.
        if unique_id in self._first_release_models:
            spec = spec.merge_attributes(deps=[BLUE_PREPARED_KEY])
        # A run that builds a release model writes blue: it runs alone among releases.
        if self._plan.release is not None and unique_id in self._plan.release.model_ids:
            spec = spec.merge_attributes(tags={RELEASE_TAG: RELEASE_TAG_VALUE})
        return spec
