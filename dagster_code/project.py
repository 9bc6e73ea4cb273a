"""Where the dbt project lives, and the one cached DbtProject every definition uses.

In the image the dbt project sits wherever the DBT_PROJECT_DIR build argument put it (the
image sets the variable); in a checkout it is the `dbt_project/` folder beside this package.
Its manifest is built ahead of time (`dbt parse` at image build), except under `dagster dev`
/ `dg`, where `prepare_if_dev` parses it on load.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from dagster_dbt import DbtProject

DEFAULT_DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"


def dbt_project_dir() -> Path:
    return Path(os.environ.get("DBT_PROJECT_DIR", DEFAULT_DBT_PROJECT_DIR)).resolve()


@functools.cache
def dbt_project() -> DbtProject:
    project = DbtProject(
        project_dir=dbt_project_dir(),
        profiles_dir=dbt_project_dir(),
        target=dbt_target(),
    )
    project.prepare_if_dev()
    return project


def dbt_target() -> str:
    return os.environ.get("DBT_TARGET", "postgres")
