"""Dagster's bookkeeping of each output a step yields, made constant-time for a dbt step of
thousands of models.

For every output a step yields, Dagster (1.13.27 to 1.13.29 at least, `execute_step.py`) checks
that no asset downstream of it was yielded before. To do so it computes the step's asset keys
afresh (`StepExecutionContext.get_output_asset_keys`): a loop over every output of the step,
each one testing membership in `AssetsDefinition.asset_and_check_keys`, a property that builds
a new set of all the multi-asset's asset and check keys at each call. The dbt step of a release
of n models and c tests thus pays about (n + c)^2 set insertions per output, (n + c)^3 in all.
Measured (py-spy, benchmark case 6): at 5,000 models the run worker spent 1.6 s per dbt node
there, and the release did not finish in 75 minutes.

Both values are fixed for the life of their object (an AssetsDefinition is immutable: subsetting
makes a new one; a step's outputs are its plan's), so here each is computed once per object.
Dagster's own code computes them; only the repetition goes. The results are frozensets: a
caller that tried to change one would fail loudly rather than corrupt the cache (none does).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from dagster._core.definitions.assets.definition.assets_definition import AssetsDefinition
from dagster._core.execution.context.system import StepExecutionContext

# Where the step's keys are kept on its context, once computed.
_OUTPUT_ASSET_KEYS_ATTRIBUTE = "_dagster_dbt_k8s_output_asset_keys"


def _once_per_step(compute: Callable[[StepExecutionContext], Any]) -> Callable[[StepExecutionContext], Any]:
    def output_asset_keys(self: StepExecutionContext) -> frozenset:
        keys = self.__dict__.get(_OUTPUT_ASSET_KEYS_ATTRIBUTE)
        if keys is None:
            keys = frozenset(compute(self))
            self.__dict__[_OUTPUT_ASSET_KEYS_ATTRIBUTE] = keys
        return keys

    output_asset_keys.computes_once = True  # type: ignore[attr-defined]
    return output_asset_keys


def compute_step_output_keys_once() -> None:
    """Applies both caches; calling it again changes nothing. Every process that builds the
    project's definitions (code server, run worker, tests) calls it."""
    current = AssetsDefinition.__dict__["asset_and_check_keys"]
    if not isinstance(current, cached_property):
        keys_of = current.fget

        def asset_and_check_keys(self: AssetsDefinition) -> frozenset:
            return frozenset(keys_of(self))

        cached = cached_property(asset_and_check_keys)
        cached.__set_name__(AssetsDefinition, "asset_and_check_keys")
        AssetsDefinition.asset_and_check_keys = cached  # type: ignore[assignment]
    if not getattr(StepExecutionContext.get_output_asset_keys, "computes_once", False):
        StepExecutionContext.get_output_asset_keys = _once_per_step(StepExecutionContext.get_output_asset_keys)  # type: ignore[method-assign]
