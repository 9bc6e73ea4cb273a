"""Blue/green releases that stay correct when Dagster retries a run from asset failure.

The guide clones green into blue in dbt's `on-run-start` and swaps in `on-run-end`. Under a
FROM_ASSET_FAILURE retry both hooks misfire: the retry's `on-run-start` clones green over
the blue tables the parent run already rebuilt, and its `on-run-end` sees only the retry's
own nodes, so it promotes a partial release. Here the two hooks are Dagster assets instead,
calling the macros of the dbt package this project ships (dbt_blue_green/):

- `release/blue_prepared` clones green into blue before any release model builds. The
  retry skips it because it was materialized, so the parent's blue tables survive.
- `release/green_promoted` depends on every promoted model, so it runs only after every model
  and dbt test of the release succeeded, in whichever run of the group they ran. It promotes
  them all in one transaction (on PostgreSQL) and records the release id in
  `green._release_log` inside that same transaction: a promotion replayed after a crash
  finds its id there and does nothing, so each release is promoted exactly once.

A retry runs the code deployed when it starts, which may be newer than its parent's (a `helm
upgrade` between a failure and its retry), while FROM_ASSET_FAILURE keeps every table the parent
built. So before promoting, `release/green_promoted` compares the code version each release model
was built with, in whichever run of the group built it, with the definitions it runs now: a
release built by two versions of the code is refused, naming the models and both versions, and
green stays as it was (`release_code_versions_differ`). The same holds for what builds the release
beyond its models' code (vars, dbt's and the packages' versions, the release's sources and seeds:
dagster_code/release_fingerprint.py): `release/blue_prepared` records it, and a run of the group
under another one is refused, naming each part that changed. The promotion records, with the release id,
what built each promoted table (`built_by`: model, code version, run, image), so a reader of a
green table can check its provenance.

`release/green_promoted` can also be launched on its own (one click in the UI), in a run group
that built nothing: blue then holds the previous green, since a promotion swaps. So it promotes
only a release whose `release/blue_prepared` and every model were materialized in its own run
group (`refuse_incomplete_release`), and the promotion macro refuses a blue prepared for another release
or before another release reached green (dbt_blue_green/macros/promote_blue_to_green.sql).
"""

from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject

from dagster_code.dbt_cli import run_operation
from dagster_code.nodes import ProjectPlan, ReleasePlan
from dagster_code.release_fingerprint import fingerprint_differences
from dagster_code.release_vars import ROOT_RUN_ID_TAG, release_id, run_dbt_vars
from dagster_code.run_coordinator import RELEASE_TAG, RELEASE_TAG_VALUE
from dagster_code.translator import BLUE_PREPARED_KEY, GREEN_PROMOTED_KEY, ProjectDbtTranslator

RELEASE_GROUP = "release"
# Runs that select a release asset run one at a time (dagster_code/run_coordinator.py).
RELEASE_ASSET_TAGS = {RELEASE_TAG: RELEASE_TAG_VALUE}
CODE_VERSION_TAG = "dagster/code_version"
# Set by the Kubernetes run launcher on each run: the image its pod runs.
IMAGE_TAG = "dagster/image"
# blue_prepared's metadata: the release fingerprint the release started with.
RELEASE_FINGERPRINT_METADATA = "release_fingerprint"
RELEASE_ID_METADATA = "release_id"
# blue_prepared materializations read to find the release's own: releases run one at a time, so
# it is among the first after its root run was created.
RECORDED_FINGERPRINT_SEARCH_LIMIT = 100


class BuiltBy(NamedTuple):
    run_id: str
    code_version: str | None
    image: str | None


def built_code_versions(
    instance: dg.DagsterInstance, release: str, keys: Iterable[dg.AssetKey]
) -> dict[dg.AssetKey, BuiltBy]:
    """What built the last materialization of each of `keys` in the runs of `release` (its root
    run, and the retries and re-executions tagged with it as root)."""
    wanted = set(keys)
    group = [
        *instance.get_run_records(dg.RunsFilter(run_ids=[release])),
        *instance.get_run_records(dg.RunsFilter(tags={ROOT_RUN_ID_TAG: release})),
    ]
    built = {}
    for run_record in sorted(group, key=lambda record: record.create_timestamp):
        group_run = run_record.dagster_run
        group_run_id = group_run.run_id
        recorded = instance.get_records_for_run(group_run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        for record in recorded.records:
            materialization = record.event_log_entry.asset_materialization
            if materialization is not None and materialization.asset_key in wanted:
                built[materialization.asset_key] = BuiltBy(
                    group_run_id, (materialization.tags or {}).get(CODE_VERSION_TAG), group_run.tags.get(IMAGE_TAG)
                )
    return built


def release_code_versions_differ(
    built: Mapping[dg.AssetKey, BuiltBy], current: Mapping[dg.AssetKey, str | None]
) -> dict[str, str]:
    """{model: what differs} for each release model built by other code than `current` holds
    (where both versions are known)."""
    return {
        key.to_user_string(): f"built by code version {by.code_version} in run {by.run_id}, now {current[key]}"
        for key, by in sorted(built.items())
        if by.code_version is not None and current.get(key) is not None and by.code_version != current[key]
    }


# How many missing models a refusal names; the rest it counts.
MISSING_MODELS_NAMED = 5


def refuse_incomplete_release(
    release: str, job_name: str, built: Mapping[dg.AssetKey, BuiltBy], models: Collection[dg.AssetKey]
) -> None:
    """Raises, naming what of the release its run group did not materialize (`built`,
    built_code_versions'): `release/blue_prepared`, and a few of `models` then a count."""
    missing_models = sorted(key.to_user_string() for key in models if key not in built)
    missing = [] if BLUE_PREPARED_KEY in built else [BLUE_PREPARED_KEY.to_user_string()]
    if missing_models:
        named = ", ".join(missing_models[:MISSING_MODELS_NAMED])
        if len(missing_models) > MISSING_MODELS_NAMED:
            named += f" and {len(missing_models) - MISSING_MODELS_NAMED} more"
        missing.append(f"{len(missing_models)} of its {len(models)} release models ({named})")
    if missing:
        raise dg.Failure(
            description=(
                f"Release {release} cannot be promoted: its run group (root run {release}, its retries and "
                f"re-executions) did not materialize {' nor '.join(missing)}. Blue may hold another release "
                f"(after a promotion it holds the previous green), so green is unchanged. Launch {job_name}: "
                "a new run prepares blue, builds every release model and promotes them."
            ),
            metadata={"missing": [key.to_user_string() for key in (BLUE_PREPARED_KEY, *models) if key not in built]},
        )


def release_code_versions(plan: ProjectPlan, project: DbtProject) -> dict[dg.AssetKey, str | None]:
    """{asset key: code version} of every release model, as the project's dbt assets define them."""
    translator = ProjectDbtTranslator(plan)
    specs = [
        translator.get_asset_spec(plan.manifest, unique_id, project) for unique_id in sorted(plan.release.model_ids)
    ]
    return {spec.key: spec.code_version for spec in specs}


def recorded_release_fingerprint(instance: dg.DagsterInstance, release: str) -> Mapping[str, str] | None:
    """The fingerprint `release/blue_prepared` recorded for `release`; None if it recorded none
    (a release started before fingerprints were recorded, or not prepared yet)."""
    root = instance.get_run_record_by_id(release)
    if root is None:
        return None
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BLUE_PREPARED_KEY, after_timestamp=root.create_timestamp.timestamp()),
        limit=RECORDED_FINGERPRINT_SEARCH_LIMIT,
        ascending=True,
    ).records
    for record in records:
        recorded = record.asset_materialization.metadata if record.asset_materialization else {}
        if RELEASE_ID_METADATA in recorded and recorded[RELEASE_ID_METADATA].value == release:
            fingerprint = recorded.get(RELEASE_FINGERPRINT_METADATA)
            return fingerprint.value if fingerprint is not None else None
    return None


def refuse_release_of_two_code_versions(
    context: dg.AssetExecutionContext,
    job_name: str,
    current: Mapping[dg.AssetKey, str | None],
    current_fingerprint: Mapping[str, str],
) -> dict[dg.AssetKey, BuiltBy]:
    """What built each release model so far, in whichever run of the release's group; raises,
    naming the models and both versions, when any was built by other code than `current` (the
    code versions of this run's definitions), or naming each part of the release's fingerprint
    that differs from `current_fingerprint` (this run's)."""
    release = release_id(context.run)
    built = built_code_versions(context.instance, release, current)
    refuse_two_code_versions(context.instance, release, job_name, built, current, current_fingerprint)
    return built


def refuse_two_code_versions(
    instance: dg.DagsterInstance,
    release: str,
    job_name: str,
    built: Mapping[dg.AssetKey, BuiltBy],
    current: Mapping[dg.AssetKey, str | None],
    current_fingerprint: Mapping[str, str],
) -> None:
    """Raises, naming the models and both versions, when `built` (built_code_versions') holds a
    model built by other code than `current`, or naming each part of the fingerprint `release`
    recorded that differs from `current_fingerprint`."""
    differ = release_code_versions_differ(built, current)
    recorded = recorded_release_fingerprint(instance, release)
    parts_differ = fingerprint_differences(recorded, current_fingerprint) if recorded is not None else []
    if differ or parts_differ:
        raise dg.Failure(
            description=(
                f"Release {release} was built by two versions of the code (deployed between a "
                "run and its retry): not promoted, green is unchanged.\n"
                + "\n".join(f"{model}: {what}" for model, what in differ.items())
                + "".join(f"\nchanged since the release started: {part}" for part in parts_differ)
                + f"\nLaunch {job_name} again: a new run builds every model with the code deployed now."
            ),
            metadata={"models": sorted(differ), "changed": parts_differ},
        )


def build_release_assets(
    release: ReleasePlan,
    promoted_keys: Mapping[dg.AssetKey, str],
    model_code_versions: Mapping[dg.AssetKey, str | None],
    vars_from_run_tags: Mapping[str, str],
    fingerprint: Mapping[str, str],
) -> list[dg.AssetsDefinition]:
    """`promoted_keys`: {asset key: table} of the promoted models; `model_code_versions`: every
    release model's (`release_code_versions`); `vars_from_run_tags`: dagster.yml's;
    `fingerprint`: the release's (release_fingerprint.release_fingerprint)."""
    tables = sorted(promoted_keys.values())

    def operation(context: dg.AssetExecutionContext, dbt: DbtCliResource, macro: str, **more: object) -> None:
        """`dbt run-operation` of a blue/green macro. It passes the vars the release's build
        passes, though the macros read only their args: dbt then finds the parse state the
        previous invocation of the run left still valid (dbt_cli.share_parse_state)."""
        macro_args = {"release_id": release_id(context.run), "tables": tables, **more}
        dbt_vars = run_dbt_vars(context.run, vars_from_run_tags, with_release_id=True)
        run_operation(context, dbt, macro, macro_args, dbt_vars)

    @dg.asset(key=BLUE_PREPARED_KEY, group_name=RELEASE_GROUP, kinds={"dbt"}, tags=RELEASE_ASSET_TAGS)
    def blue_prepared(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> dg.MaterializeResult:
        """Blue holds a copy of green's promoted tables, so a release starts from what consumers see."""
        operation(context, dbt, "clone_green_to_blue")
        return dg.MaterializeResult(
            metadata={
                RELEASE_ID_METADATA: release_id(context.run),
                # The runs of the release compare theirs with it (refuse_release_of_two_code_versions).
                RELEASE_FINGERPRINT_METADATA: dg.MetadataValue.json(dict(fingerprint)),
            }
        )

    @dg.asset(
        key=GREEN_PROMOTED_KEY,
        group_name=RELEASE_GROUP,
        deps=list(promoted_keys),
        kinds={"dbt"},
        tags=RELEASE_ASSET_TAGS,
    )
    def green_promoted(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> dg.MaterializeResult:
        """Every promoted table of the release, from blue to green at once, exactly once."""
        group = release_id(context.run)
        built = built_code_versions(context.instance, group, [BLUE_PREPARED_KEY, *model_code_versions])
        refuse_incomplete_release(group, release.job_name, built, model_code_versions.keys())
        refuse_two_code_versions(context.instance, group, release.job_name, built, model_code_versions, fingerprint)
        built_by = {
            table: {"model": key.to_user_string(), **built[key]._asdict()}
            for key, table in promoted_keys.items()
            if key in built
        }
        operation(context, dbt, "promote_blue_to_green", built_by=built_by)
        return dg.MaterializeResult(metadata={"release_id": release_id(context.run)})

    return [blue_prepared, green_promoted]
