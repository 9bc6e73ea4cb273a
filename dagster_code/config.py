"""The platform's configuration, read from the dbt project and checked when definitions load.

Two places, both in the dbt project:

- Per node, dbt `meta` keys (set per folder with `+meta` in dbt_project.yml, or in a model's
  YAML or `config()`): `dagster_group`, `dagster_pool` (snapshots), `dagster_partitions`
  (regular incremental models) and `dagster_job` (partitioned models). Keys are flat because
  dbt merges `meta` one level deep: a nested dict set on a model would replace its folder's.
- Per project, `dagster.yml` beside dbt_project.yml (optional): the blue/green release, the
  tagged-test schedules, the default snapshot pool, dbt vars taken from run tags, and Python
  modules of the project that add definitions.

Every mistake raises `PlatformConfigError` naming the file, the key and the dbt node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dagster_code.release_vars import PLATFORM_VARS
from dagster_code.run_coordinator import RELEASE_TAG

PROJECT_CONFIG_FILE = "dagster.yml"
META_PREFIX = "dagster_"
GROUP_KEY = "dagster_group"
POOL_KEY = "dagster_pool"
PARTITIONS_KEY = "dagster_partitions"
JOB_KEY = "dagster_job"
META_KEYS = (GROUP_KEY, POOL_KEY, PARTITIONS_KEY, JOB_KEY)
PARTITIONS_KEYS = ("unit", "start", "start_var", "end_var")
TIME_UNITS = ("hour", "day", "month", "year")
# One pool for every snapshot unless configured; its limit is in the chart's values.
DEFAULT_SNAPSHOT_POOL = "dbt-snapshots"
DEFAULT_RELEASE_JOB = "release_job"

PROJECT_KEYS = ("release", "tests_schedules", "snapshots", "vars_from_run_tags", "python_modules")
RELEASE_KEYS = ("select", "exclude", "promote", "job", "run_tags")
TESTS_SCHEDULE_KEYS = ("tag", "cron", "timezone", "job", "schedule")
SNAPSHOTS_KEYS = ("default_pool",)


class PlatformConfigError(ValueError):
    """A configuration the platform refuses: the message names file, key and dbt node."""

    def __init__(self, file: str, key: str, node: str, problem: str):
        super().__init__(f"{file}: {key} on {node}: {problem}")


@dataclass(frozen=True)
class Release:
    select: str
    exclude: str = ""
    promote: str | None = None
    job: str = DEFAULT_RELEASE_JOB
    # Added to the release job's runs; the release tag that serializes releases is the platform's.
    run_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TestsSchedule:
    tag: str
    cron: str
    timezone: str = "UTC"
    job: str | None = None
    schedule: str | None = None

    @property
    def job_name(self) -> str:
        return self.job or f"{identifier(self.tag)}_job"

    @property
    def schedule_name(self) -> str:
        return self.schedule or f"{identifier(self.tag)}_schedule"


@dataclass(frozen=True)
class ProjectConfig:
    release: Release | None = None
    tests_schedules: tuple[TestsSchedule, ...] = ()
    default_snapshot_pool: str = DEFAULT_SNAPSHOT_POOL
    # dbt var name -> run tag: the tag's value goes to the first run of a run group only.
    vars_from_run_tags: Mapping[str, str] = field(default_factory=dict)
    python_modules: tuple[str, ...] = ()


def identifier(text: str) -> str:
    """A name Dagster accepts (letters, digits, underscores) made from any text."""
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def _check_keys(file: str, key: str, node: str, value: Any, allowed: tuple[str, ...]) -> Mapping:
    if not isinstance(value, Mapping):
        raise PlatformConfigError(file, key, node, f"expected a mapping, got {value!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise PlatformConfigError(
            file,
            f"{key}.{unknown[0]}" if key else unknown[0],
            node,
            f"unknown key; expected one of {', '.join(allowed)}",
        )
    return value


def _required_text(file: str, key: str, node: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PlatformConfigError(file, key, node, f"expected a non-empty string, got {value!r}")
    return value


def load_project_config(project_dir: Path) -> ProjectConfig:
    path = project_dir / PROJECT_CONFIG_FILE
    if not path.exists():
        return ProjectConfig()
    file = str(path)
    node = "the project"
    document = yaml.safe_load(path.read_text()) or {}
    _check_keys(file, "", node, document, PROJECT_KEYS)

    release = None
    if "release" in document:
        spec = _check_keys(file, "release", node, document["release"], RELEASE_KEYS)
        release = Release(
            select=_required_text(file, "release.select", node, spec.get("select")),
            exclude=spec.get("exclude") or "",
            promote=spec.get("promote"),
            job=spec.get("job", DEFAULT_RELEASE_JOB),
            run_tags=_release_run_tags(file, node, spec.get("run_tags") or {}),
        )

    schedules = []
    for index, spec in enumerate(document.get("tests_schedules") or []):
        key = f"tests_schedules[{index}]"
        _check_keys(file, key, node, spec, TESTS_SCHEDULE_KEYS)
        schedules.append(
            TestsSchedule(
                tag=_required_text(file, f"{key}.tag", node, spec.get("tag")),
                cron=_required_text(file, f"{key}.cron", node, spec.get("cron")),
                timezone=spec.get("timezone", "UTC"),
                job=spec.get("job"),
                schedule=spec.get("schedule"),
            )
        )

    snapshots = _check_keys(file, "snapshots", node, document.get("snapshots") or {}, SNAPSHOTS_KEYS)
    vars_from_run_tags = document.get("vars_from_run_tags") or {}
    if not isinstance(vars_from_run_tags, Mapping):
        raise PlatformConfigError(file, "vars_from_run_tags", node, "expected a mapping of dbt var to run tag")
    for var in vars_from_run_tags:
        if var in PLATFORM_VARS:
            raise PlatformConfigError(
                file,
                f"vars_from_run_tags.{var}",
                node,
                f"dbt var '{var}' is set by the platform (a run tag could make a run build or promote "
                f"another release than its run group's); remove it, or use a var of the project's own "
                f"(the platform's are {', '.join(PLATFORM_VARS)})",
            )
    return ProjectConfig(
        release=release,
        tests_schedules=tuple(schedules),
        default_snapshot_pool=snapshots.get("default_pool", DEFAULT_SNAPSHOT_POOL),
        vars_from_run_tags={str(k): str(v) for k, v in vars_from_run_tags.items()},
        python_modules=tuple(document.get("python_modules") or ()),
    )


def platform_meta(node: Mapping[str, Any]) -> dict[str, Any]:
    """The node's `dagster_*` meta keys (dagster-dbt's own `meta.dagster` is left alone)."""
    meta = node.get("config", {}).get("meta") or node.get("meta") or {}
    return {key: value for key, value in meta.items() if key.startswith(META_PREFIX)}


def node_config_file(project_dir: Path, project_name: str, node: Mapping[str, Any], key: str) -> str:
    """The file that sets `key` on the node: its YAML or SQL if either mentions it, else
    dbt_project.yml (a folder's `+meta`)."""
    if node.get("package_name") == project_name:
        for relative in (node.get("patch_path"), node.get("original_file_path")):
            if not relative:
                continue
            path = project_dir / relative.split("://", 1)[-1]
            if path.is_file() and key.split(".")[0] in path.read_text():
                return str(path)
    return str(project_dir / "dbt_project.yml")


def _release_run_tags(file: str, node: str, run_tags: Any) -> dict[str, str]:
    if not isinstance(run_tags, Mapping):
        raise PlatformConfigError(file, "release.run_tags", node, "expected a mapping of run tag to value")
    if RELEASE_TAG in run_tags:
        raise PlatformConfigError(
            file,
            f"release.run_tags.{RELEASE_TAG}",
            node,
            "the platform sets this tag on every run that builds a release asset, so that releases run one "
            "at a time; remove it (other run tags are added to the release's runs)",
        )
    return {str(k): str(v) for k, v in run_tags.items()}
