"""How dbt nodes become Dagster assets: groups, macro-aware code versions, release lineage.

One translator serves both the DbtProjectComponents (through `apply_project_conventions`)
and the partitioned `@dbt_assets`, so every dbt asset follows the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject

from dagster_code.code_versions import macro_aware_code_version

DEFAULT_GROUP = "dbt_models"
# Folder rules first: a node's group is the first rule whose path prefix matches.
GROUPS_BY_PATH_PREFIX = (
    ("models/staging/", "staging"),
    ("models/intermediate/", "intermediate"),
    ("models/marts/", "marts"),
    ("models/events/", "app_events"),
    ("snapshots/sales/", "sales_snapshots"),
    ("snapshots/inventory/", "inventory_snapshots"),
)
# Then tags, in this order.
GROUP_TAGS = ("finance", "marketing")
# Release models are rebuilt in the blue schema and promoted together.
RELEASE_FOLDERS = ("staging", "intermediate", "marts")
BLUE_PREPARED_KEY = dg.AssetKey(["release", "blue_prepared"])
GREEN_PROMOTED_KEY = dg.AssetKey(["release", "green_promoted"])


def group_for(props: Mapping[str, Any]) -> str:
    path = props.get("original_file_path", "")
    for prefix, group in GROUPS_BY_PATH_PREFIX:
        if path.startswith(prefix):
            return group
    tags = props.get("tags", [])
    for tag in GROUP_TAGS:
        if tag in tags:
            return tag
    meta_group = props.get("config", {}).get("meta", {}).get("dagster_group")
    return meta_group or DEFAULT_GROUP


def is_release_model(props: Mapping[str, Any]) -> bool:
    fqn = props.get("fqn", [])
    return (
        props.get("resource_type") == "model"
        and len(fqn) > 2
        and fqn[1] in RELEASE_FOLDERS
        and props.get("config", {}).get("materialized") != "ephemeral"
    )


def is_mart(props: Mapping[str, Any]) -> bool:
    return is_release_model(props) and props["fqn"][1] == "marts"


def _has_release_parent(manifest: Mapping[str, Any], props: Mapping[str, Any]) -> bool:
    """True when a non-ephemeral release model is upstream (through ephemeral models)."""
    for parent_id in props.get("depends_on", {}).get("nodes", []):
        parent = manifest["nodes"].get(parent_id)
        if parent is None:
            continue
        if is_release_model(parent):
            return True
        if parent.get("config", {}).get("materialized") == "ephemeral" and _has_release_parent(
            manifest, parent
        ):
            return True
    return False


def apply_project_conventions(
    spec: dg.AssetSpec, manifest: Mapping[str, Any], unique_id: str
) -> dg.AssetSpec:
    props = manifest["nodes"].get(unique_id) or manifest["sources"].get(unique_id)
    if props is None or unique_id.startswith("source."):
        return spec
    spec = spec.replace_attributes(
        # A model's key is its name: the schema it builds in (blue) is not where it is read.
        key=dg.AssetKey([props["name"]]),
        group_name=group_for(props),
        code_version=macro_aware_code_version(manifest, unique_id),
    )
    # The first release models wait for blue to be prepared from green.
    if is_release_model(props) and not _has_release_parent(manifest, props):
        spec = spec.merge_attributes(deps=[BLUE_PREPARED_KEY])
    return spec


def marts(manifest: Mapping[str, Any]) -> dict[dg.AssetKey, str]:
    """Every mart's asset key and its table name (the relation blue/green promotes)."""
    translator = ProjectDbtTranslator()
    return {
        translator.get_asset_spec(manifest, unique_id, None).key: props["alias"]
        for unique_id, props in sorted(manifest["nodes"].items())
        if is_mart(props)
    }


class ProjectDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return group_for(dbt_resource_props)

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        return apply_project_conventions(spec, manifest, unique_id)
