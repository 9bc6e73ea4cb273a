"""What the platform derives from a dbt manifest and its configuration, checked as it goes.

`plan_project` reads every model, seed and snapshot once and decides its group, its snapshot
pool, its partitions and whether it belongs to the blue/green release. Nothing here knows a
project's names: they all come from the manifest, dbt `meta` and dagster.yml.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string
from dagster_dbt import DbtProject
from dagster_dbt.utils import select_unique_ids

from dagster_code.config import (
    GROUP_KEY,
    JOB_KEY,
    META_KEYS,
    PARTITIONS_KEY,
    PARTITIONS_KEYS,
    POOL_KEY,
    PROJECT_CONFIG_FILE,
    TIME_UNITS,
    PlatformConfigError,
    ProjectConfig,
    identifier,
    node_config_file,
    platform_meta,
)

ASSET_RESOURCE_TYPES = ("model", "seed", "snapshot")
# The blue/green package this project ships (dbt_blue_green/): the macros a release calls.
RELEASE_MACROS = ("clone_green_to_blue", "promote_blue_to_green")
CRON_BY_UNIT = {"hour": "0 * * * *", "day": "0 0 * * *", "month": "0 0 1 * *", "year": "0 0 1 1 *"}
PARTITION_KEY_FORMAT_BY_UNIT = {"hour": "%Y-%m-%d-%H:%M", "day": "%Y-%m-%d", "month": "%Y-%m-%d", "year": "%Y-%m-%d"}


@dataclass(frozen=True)
class PartitionedModel:
    unique_id: str
    name: str
    partitions_def: dg.TimeWindowPartitionsDefinition
    job_name: str
    # Microbatch: dbt's batches take --event-time-start/--event-time-end, and one dbt invocation
    # builds a whole range. Otherwise the window goes to the model in these two vars.
    microbatch: bool
    start_var: str | None = None
    end_var: str | None = None

    @property
    def op_name(self) -> str:
        return f"dbt_{self.name}"

    @property
    def backfill_policy(self) -> dg.BackfillPolicy:
        return dg.BackfillPolicy.single_run() if self.microbatch else dg.BackfillPolicy.multi_run(1)


@dataclass(frozen=True)
class SnapshotPool:
    pool: str
    unique_ids: tuple[str, ...]

    @property
    def op_name(self) -> str:
        words = [word for word in identifier(self.pool).split("_") if word not in ("dbt", "snapshots", "")]
        return "_".join(["dbt_snapshots", *words])

    @property
    def job_name(self) -> str:
        return f"{identifier(self.pool)}_job"


@dataclass(frozen=True)
class ReleasePlan:
    model_ids: frozenset[str]
    # The models whose tables blue/green clones and promotes, by unique id, with their relation.
    promoted_tables: Mapping[str, str]
    job_name: str
    run_tags: Mapping[str, str]


@dataclass(frozen=True)
class ProjectPlan:
    manifest: Mapping[str, Any]
    config: ProjectConfig
    groups: Mapping[str, str]
    snapshot_pools: tuple[SnapshotPool, ...]
    partitioned: Mapping[str, PartitionedModel]
    release: ReleasePlan | None

    def first_release_models(self) -> frozenset[str]:
        """Release models with no release model upstream (through ephemeral models)."""
        if self.release is None:
            return frozenset()
        return frozenset(
            unique_id
            for unique_id in self.release.model_ids
            if not _has_parent_in(self.manifest, self.manifest["nodes"][unique_id], self.release.model_ids)
        )


def _describe(node: Mapping[str, Any]) -> str:
    return f"{node['resource_type']} '{node['name']}' ({node['unique_id']})"


def _materialization(node: Mapping[str, Any]) -> str | None:
    return node.get("config", {}).get("materialized")


def _has_parent_in(manifest: Mapping[str, Any], node: Mapping[str, Any], ids: frozenset[str]) -> bool:
    for parent_id in node.get("depends_on", {}).get("nodes", []):
        parent = manifest["nodes"].get(parent_id)
        if parent is None:
            continue
        if parent_id in ids:
            return True
        if _materialization(parent) == "ephemeral" and _has_parent_in(manifest, parent, ids):
            return True
    return False


def asset_nodes(manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        unique_id: node
        for unique_id, node in sorted(manifest["nodes"].items())
        if node["resource_type"] in ASSET_RESOURCE_TYPES and _materialization(node) != "ephemeral"
    }


def default_group(node: Mapping[str, Any], project_name: str) -> str:
    """A package's nodes form a group named after it; the root project's nodes are grouped by
    their top-level folder (`models/finance/x.sql` -> finance), else by resource type."""
    if node.get("package_name") != project_name:
        return identifier(node["package_name"])
    parts = Path(node.get("original_file_path", "")).parts
    if len(parts) > 2:
        return identifier(parts[1])
    return f"dbt_{node['resource_type']}s"


def _as_utc(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _truncate(moment: datetime, unit: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    if unit in ("day", "month", "year"):
        moment = moment.replace(hour=0)
    if unit in ("month", "year"):
        moment = moment.replace(day=1)
    if unit == "year":
        moment = moment.replace(month=1)
    return moment


def time_partitions(unit: str, start: datetime) -> dg.TimeWindowPartitionsDefinition:
    """One partition per `unit`, the first one holding `start` (as dbt's batches do)."""
    key_format = PARTITION_KEY_FORMAT_BY_UNIT[unit]
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=CRON_BY_UNIT[unit],
        start=_truncate(start, unit).strftime(key_format),
        fmt=key_format,
        timezone="UTC",
    )


class _Checker:
    def __init__(self, manifest: Mapping[str, Any], project_dir: Path):
        self.manifest = manifest
        self.project_dir = project_dir
        self.project_name = manifest["metadata"].get("project_name", "")

    def fail(self, node: Mapping[str, Any], key: str, problem: str) -> PlatformConfigError:
        return PlatformConfigError(
            node_config_file(self.project_dir, self.project_name, node, key), key, _describe(node), problem
        )

    def meta(self, node: Mapping[str, Any]) -> dict[str, Any]:
        meta = platform_meta(node)
        for key in meta:
            if key not in META_KEYS:
                raise self.fail(node, key, f"unknown key; expected one of {', '.join(META_KEYS)}")
        if POOL_KEY in meta and node["resource_type"] != "snapshot":
            raise self.fail(node, POOL_KEY, "a pool applies to snapshots only (concurrent snapshot merges)")
        return meta

    def partitioned(self, node: Mapping[str, Any], meta: Mapping[str, Any]) -> PartitionedModel | None:
        config = node.get("config", {})
        microbatch = config.get("incremental_strategy") == "microbatch" and _materialization(node) == "incremental"
        job_name = meta.get(JOB_KEY) or f"{node['name']}_job"
        if microbatch:
            if PARTITIONS_KEY in meta:
                raise self.fail(
                    node, PARTITIONS_KEY, "a microbatch model's partitions come from its begin and batch_size"
                )
            batch_size, begin = config.get("batch_size"), config.get("begin")
            if batch_size not in TIME_UNITS:
                raise self.fail(node, "batch_size", f"'{batch_size}' is not one of {', '.join(TIME_UNITS)}")
            if not begin:
                raise self.fail(node, "begin", "a microbatch model needs `begin` for its first partition")
            return PartitionedModel(
                node["unique_id"], node["name"], time_partitions(batch_size, _as_utc(begin)), job_name, microbatch=True
            )
        if PARTITIONS_KEY not in meta:
            if JOB_KEY in meta:
                raise self.fail(node, JOB_KEY, "a job of its own applies to partitioned models only")
            return None
        if _materialization(node) != "incremental":
            raise self.fail(
                node, PARTITIONS_KEY, f"partitions need an incremental model, not '{_materialization(node)}'"
            )
        spec = meta[PARTITIONS_KEY]
        if not isinstance(spec, Mapping):
            raise self.fail(node, PARTITIONS_KEY, f"expected a mapping with {', '.join(PARTITIONS_KEYS)}")
        for key in spec:
            if key not in PARTITIONS_KEYS:
                raise self.fail(
                    node, f"{PARTITIONS_KEY}.{key}", f"unknown key; expected one of {', '.join(PARTITIONS_KEYS)}"
                )
        for key in PARTITIONS_KEYS:
            if not spec.get(key):
                raise self.fail(node, f"{PARTITIONS_KEY}.{key}", "missing")
        if spec["unit"] not in TIME_UNITS:
            raise self.fail(node, f"{PARTITIONS_KEY}.unit", f"'{spec['unit']}' is not one of {', '.join(TIME_UNITS)}")
        try:
            start = _as_utc(spec["start"])
        except ValueError:
            raise self.fail(node, f"{PARTITIONS_KEY}.start", f"'{spec['start']}' is not an ISO date or time") from None
        return PartitionedModel(
            node["unique_id"],
            node["name"],
            time_partitions(spec["unit"], start),
            job_name,
            microbatch=False,
            start_var=spec["start_var"],
            end_var=spec["end_var"],
        )


def asset_check_node(manifest: Mapping[str, Any], test: Mapping[str, Any]) -> str | None:
    """The node whose Dagster asset check a dbt test becomes, by dagster-dbt's rule
    (`dagster_dbt.asset_utils.get_asset_check_key_for_test`): a generic test's attached node, a
    singular test's only parent, else the node its `meta.dagster.ref` names; None: no asset check."""
    parents = test.get("depends_on", {}).get("nodes", [])
    attached = test.get("attached_node")
    if len(set(parents)) == 1:
        attached = parents[0]
    ref = ((test.get("config", {}).get("meta") or test.get("meta") or {}).get("dagster") or {}).get("ref") or {}
    if ref:
        wanted = (ref.get("name"), ref.get("package") or manifest["metadata"].get("project_name"), ref.get("version"))
        attached = next(
            (
                unique_id
                for unique_id, node in manifest["nodes"].items()
                if (node["name"], node["package_name"], node.get("version")) == wanted
            ),
            None,
        )
    return attached or None


def _refuse_release_tests_without_asset_check(
    manifest: Mapping[str, Any], project_dir: Path, model_ids: frozenset[str]
) -> None:
    """A dbt test gates the release, but a retry from asset failure re-executes only failed or
    missing assets and asset checks: a test that is no asset check is not run again, and a retry
    after the run was stopped during it would promote models it never passed."""

    def reads_release_model(parent_id: str) -> bool:
        parent = manifest["nodes"].get(parent_id)
        if parent is None:
            return False
        return parent_id in model_ids or (
            _materialization(parent) == "ephemeral" and _has_parent_in(manifest, parent, model_ids)
        )

    for test in manifest["nodes"].values():
        if test["resource_type"] != "test" or asset_check_node(manifest, test) is not None:
            continue
        parent_ids = test.get("depends_on", {}).get("nodes", [])
        read = sorted(
            manifest["nodes"][parent_id]["name"] for parent_id in parent_ids if reads_release_model(parent_id)
        )
        if not read:
            continue
        named_ref = ((test.get("config", {}).get("meta") or {}).get("dagster") or {}).get("ref")
        why = f"its meta.dagster.ref {named_ref} names no node" if named_ref else "it reads several nodes"
        raise PlatformConfigError(
            str(project_dir / test.get("original_file_path", "")),
            "config.meta.dagster.ref",
            _describe(test),
            f"reads release models {', '.join(read)} and is no Dagster asset check ({why}), so a retry "
            "of a stopped release would not run it again before promoting. Attach it to one model it "
            f"reads: `config: meta: dagster: ref: {{name: {read[0]}}}`",
        )


def _check_unique(names: list[tuple[str, str]], what: str) -> None:
    seen: dict[str, str] = {}
    for name, owner in names:
        if name in seen:
            raise PlatformConfigError(
                PROJECT_CONFIG_FILE, what, f"{seen[name]} and {owner}", f"both would be named '{name}'; rename one"
            )
        seen[name] = owner


def _release_plan(
    manifest: Mapping[str, Any],
    project: DbtProject,
    config: ProjectConfig,
    partitioned: Mapping[str, PartitionedModel],
) -> ReleasePlan | None:
    release = config.release
    if release is None:
        return None
    file = str(Path(project.project_dir) / PROJECT_CONFIG_FILE)
    adapter = manifest["metadata"].get("adapter_type", "")
    macro_names = {macro["name"] for macro in manifest["macros"].values()}
    missing = [name for name in RELEASE_MACROS if f"{adapter}__{name}" not in macro_names]
    if missing:
        raise PlatformConfigError(
            file,
            "release",
            f"adapter '{adapter}'",
            f"no {', '.join(f'{adapter}__{name}' for name in missing)} macro: the blue/green package "
            "(dbt_blue_green, one `local:` line in packages.yml) supports postgres and snowflake",
        )
    nodes = asset_nodes(manifest)

    def models(selection: str, key: str) -> frozenset[str]:
        ids = frozenset(
            unique_id
            for unique_id in select_unique_ids(selection, release.exclude, "", project, manifest)
            if unique_id in nodes and nodes[unique_id]["resource_type"] == "model"
        )
        if not ids:
            raise PlatformConfigError(file, key, f"selection '{selection}'", "selects no model of the project")
        return ids

    model_ids = models(release.select, "release.select")
    _refuse_release_tests_without_asset_check(manifest, Path(project.project_dir), model_ids)
    for unique_id in sorted(model_ids & set(partitioned)):
        raise PlatformConfigError(
            file,
            "release.select",
            _describe(nodes[unique_id]),
            "a partitioned model is built per partition by its own job, not by the release",
        )
    if release.promote:
        promote_ids = models(release.promote, "release.promote")
        outside = sorted(promote_ids - model_ids)
        if outside:
            raise PlatformConfigError(file, "release.promote", _describe(nodes[outside[0]]), "is not a release model")
    else:
        # By default the release publishes its last models: those no other release model reads.
        promote_ids = frozenset(
            unique_id
            for unique_id in model_ids
            if not any(unique_id in nodes[child].get("depends_on", {}).get("nodes", []) for child in model_ids)
        )
    return ReleasePlan(
        model_ids=model_ids,
        promoted_tables={unique_id: nodes[unique_id]["alias"] for unique_id in sorted(promote_ids)},
        job_name=release.job,
        run_tags=dict(release.run_tags),
    )


def _check_schedules(project_dir: Path, config: ProjectConfig) -> None:
    file = str(project_dir / PROJECT_CONFIG_FILE)
    for index, schedule in enumerate(config.tests_schedules):
        where = f"tests schedule of tag '{schedule.tag}'"
        if not is_valid_cron_string(schedule.cron):
            raise PlatformConfigError(
                file, f"tests_schedules[{index}].cron", where, f"'{schedule.cron}' is not a valid cron"
            )
        try:
            zoneinfo.ZoneInfo(schedule.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise PlatformConfigError(
                file, f"tests_schedules[{index}].timezone", where, f"'{schedule.timezone}' is not an IANA time zone"
            ) from None


def plan_project(manifest: Mapping[str, Any], project: DbtProject, config: ProjectConfig) -> ProjectPlan:
    checker = _Checker(manifest, Path(project.project_dir))
    groups: dict[str, str] = {}
    pools: dict[str, list[str]] = {}
    partitioned: dict[str, PartitionedModel] = {}
    for unique_id, node in asset_nodes(manifest).items():
        meta = checker.meta(node)
        dagster_dbt_group = (node.get("config", {}).get("meta") or {}).get("dagster", {}).get("group")
        groups[unique_id] = meta.get(GROUP_KEY) or dagster_dbt_group or default_group(node, checker.project_name)
        if node["resource_type"] == "snapshot":
            pools.setdefault(meta.get(POOL_KEY) or config.default_snapshot_pool, []).append(unique_id)
            continue
        model = checker.partitioned(node, meta) if node["resource_type"] == "model" else None
        if model is not None:
            partitioned[unique_id] = model
    snapshot_pools = tuple(SnapshotPool(pool, tuple(ids)) for pool, ids in sorted(pools.items()))
    _check_unique([(pool.op_name, f"pool '{pool.pool}'") for pool in snapshot_pools], "snapshot pool")
    release = _release_plan(manifest, project, config, partitioned)
    _check_unique(
        [(pool.job_name, f"pool '{pool.pool}'") for pool in snapshot_pools]
        + [(model.job_name, f"model '{model.name}'") for model in partitioned.values()]
        + ([(release.job_name, "release")] if release else [])
        + [(schedule.job_name, f"tests tag '{schedule.tag}'") for schedule in config.tests_schedules],
        "job",
    )
    _check_schedules(Path(project.project_dir), config)
    return ProjectPlan(manifest, config, groups, snapshot_pools, partitioned, release)
