"""Dagster's per-output bookkeeping computed once (dagster_code/step_outputs.py): the same keys
as Dagster computes, for a whole multi-asset and for a subset of it, as a retry selects."""

import dagster as dg

from dagster_code.step_outputs import compute_step_output_keys_once

NAMES = ("a", "b", "c")
CHECK = dg.AssetCheckKey(dg.AssetKey("a"), "positive")


@dg.multi_asset(
    outs={name: dg.AssetOut(is_required=False) for name in NAMES},
    check_specs=[dg.AssetCheckSpec("positive", asset="a")],
    can_subset=True,
)
def letters(context: dg.AssetExecutionContext):
    step = context.op_execution_context._step_execution_context  # noqa: SLF001 - what the cache serves
    first, second = step.get_output_asset_keys(), step.get_output_asset_keys()
    assert first is second, "computed twice"
    # The keys of the outputs this step yields, as Dagster computes them.
    assert first == context.selected_asset_keys, (first, context.selected_asset_keys)
    for name in NAMES:
        if name in context.selected_output_names:
            yield dg.Output(None, output_name=name)
    if CHECK in context.selected_asset_check_keys:
        yield dg.AssetCheckResult(asset_key="a", check_name="positive", passed=True)


def test_step_output_keys_computed_once_as_dagster_computes_them_whole_and_subset():
    compute_step_output_keys_once()
    compute_step_output_keys_once()  # a second process-wide call changes nothing

    whole = dg.materialize([letters])
    subset = dg.materialize([letters], selection=["b"])

    assert whole.success and subset.success
    assert {event.asset_key for event in whole.get_asset_materialization_events()} == {
        dg.AssetKey(name) for name in NAMES
    }
    assert [event.asset_key for event in subset.get_asset_materialization_events()] == [dg.AssetKey("b")]
    assert letters.asset_and_check_keys is letters.asset_and_check_keys
    assert letters.asset_and_check_keys == {*(dg.AssetKey(name) for name in NAMES), CHECK}
    only_b = letters.subset_for({dg.AssetKey("b")}, selected_asset_check_keys=set())
    assert only_b.asset_and_check_keys == {dg.AssetKey("b")}


def test_the_projects_assets_keep_every_key_and_check(defs):
    for assets_def in defs.assets:
        if isinstance(assets_def, dg.AssetsDefinition):
            assert assets_def.asset_and_check_keys == {*assets_def.keys, *assets_def.check_keys}
