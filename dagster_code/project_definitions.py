"""Every definition of a dbt project, derived from its manifest and its configuration."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtProject

from dagster_code.assets import build_dbt_assets
from dagster_code.config import PROJECT_CONFIG_FILE, PlatformConfigError, load_project_config
from dagster_code.dbt_cli import dbt_resource
from dagster_code.jobs import build_asset_jobs, build_tests_schedules
from dagster_code.nodes import asset_nodes, plan_project
from dagster_code.release import build_release_assets, release_code_versions
from dagster_code.release_fingerprint import release_fingerprint
from dagster_code.release_vars import RELEASE_ID_VAR
from dagster_code.step_outputs import compute_step_output_keys_once

# What a module named in dagster.yml's `python_modules` must define.
PYTHON_MODULE_ATTRIBUTE = "defs"


def _python_module_definitions(project_dir: Path, module_name: str) -> dg.Definitions:
    """A project's own Python (e.g. a generator of its source data), importable from its folder."""
    if str(project_dir) not in sys.path:
        sys.path.append(str(project_dir))
    module = importlib.import_module(module_name)
    definitions = getattr(module, PYTHON_MODULE_ATTRIBUTE, None)
    if not isinstance(definitions, dg.Definitions):
        raise PlatformConfigError(
            str(project_dir / PROJECT_CONFIG_FILE),
            "python_modules",
            f"module '{module_name}'",
            f"defines no `{PYTHON_MODULE_ATTRIBUTE} = dagster.Definitions(...)`",
        )
    return definitions


def build_definitions(project: DbtProject) -> dg.Definitions:
    compute_step_output_keys_once()
    project_dir = Path(project.project_dir)
    manifest = json.loads(project.manifest_path.read_text())
    plan = plan_project(manifest, project, load_project_config(project_dir))
    key_of = {unique_id: dg.AssetKey([node["name"]]) for unique_id, node in asset_nodes(manifest).items()}
    model_code_versions = release_code_versions(plan, project) if plan.release is not None else {}
    fingerprint = (
        release_fingerprint(
            manifest, project_dir, plan.release.model_ids, [RELEASE_ID_VAR, *plan.config.vars_from_run_tags]
        )
        if plan.release is not None
        else {}
    )
    assets = build_dbt_assets(plan, project, model_code_versions, fingerprint)
    if plan.release is not None:
        assets += build_release_assets(
            plan.release,
            {key_of[unique_id]: table for unique_id, table in plan.release.promoted_tables.items()},
            model_code_versions,
            plan.config.vars_from_run_tags,
            fingerprint,
        )
    project_defs = dg.Definitions(
        assets=assets,
        jobs=build_asset_jobs(plan, key_of),
        schedules=build_tests_schedules(plan),
        resources={"dbt": dbt_resource(project)},
        # Steps run in the run worker's own process. The default executor starts a process per step,
        # and each one imports the code location again and rebuilds every definition from the
        # manifest (seconds of CPU per step, more with the project's size); dbt parallelizes within
        # its one step with its threads, and pools and retries work alike in both executors.
        executor=dg.in_process_executor,
    )
    return dg.Definitions.merge(
        project_defs,
        *(_python_module_definitions(project_dir, name) for name in plan.config.python_modules),
    )
