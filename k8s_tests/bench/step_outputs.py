"""Dagster's cost per output of one step, by the step's size, as Dagster ships and with
dagster_code/step_outputs.py: the cost that bounded a release of 5,000 dbt models (case 6).

One multi-asset of n assets and one check per asset (a dbt step of n models and n tests), every
output yielded, materialized in process on an ephemeral instance; no dbt, no cluster. Each
measurement runs in a process of its own, since the fix is process-wide.

    uv run --frozen python -m k8s_tests.bench.step_outputs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import dagster as dg

# Sizes measured as Dagster ships; at 5,000 its cost (about 1 s per output) would take hours.
AS_SHIPPED_SIZES = (250, 500, 1000, 2000)
FIXED_SIZES = (250, 500, 1000, 2000, 5000)
MEASURE_TIMEOUT_SECONDS = 1800


def many_outputs(size: int) -> dg.AssetsDefinition:
    names = [f"model_{index:05d}" for index in range(size)]

    @dg.multi_asset(
        outs={name: dg.AssetOut(dagster_type=dg.Nothing) for name in names},
        check_specs=[dg.AssetCheckSpec("not_null", asset=name) for name in names],
    )
    def step():
        for name in names:
            yield dg.Output(None, output_name=name)
            yield dg.AssetCheckResult(asset_key=name, check_name="not_null", passed=True)

    return step


def measure(size: int, fixed: bool) -> dict:
    """Seconds to materialize the step (mean per asset output too), in this process."""
    if fixed:
        from dagster_code.step_outputs import compute_step_output_keys_once

        compute_step_output_keys_once()
    step = many_outputs(size)
    started = time.perf_counter()
    # As a dbt step's: Nothing-typed outputs (no I/O manager). Events are stored; only the console is quiet.
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = dg.materialize([step], instance=dg.DagsterInstance.ephemeral(), run_config=quiet)
    seconds = time.perf_counter() - started
    assert result.success and len(result.get_asset_materialization_events()) == size
    return {
        "size": size,
        "fixed": fixed,
        "seconds": round(seconds, 2),
        "ms_per_output": round(1000 * seconds / size, 2),
    }


def measure_in_own_process(size: int, fixed: bool) -> dict:
    command = [sys.executable, "-m", "k8s_tests.bench.step_outputs", "--one", str(size)] + (
        ["--fixed"] if fixed else []
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=MEASURE_TIMEOUT_SECONDS, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=int, help="measure this size only, in this process (JSON on stdout)")
    parser.add_argument("--fixed", action="store_true", help="with --one: with dagster_code/step_outputs.py")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.fixed)))
        return 0
    print("| assets (+ as many checks) | as Dagster ships: s (ms per output) | with the fix: s (ms per output) |")
    print("|---|---|---|")
    for size in sorted(set(AS_SHIPPED_SIZES) | set(FIXED_SIZES)):
        cells = []
        for fixed, sizes in ((False, AS_SHIPPED_SIZES), (True, FIXED_SIZES)):
            if size in sizes:
                print(
                    f"measuring {size} assets, {'with the fix' if fixed else 'as shipped'}", file=sys.stderr, flush=True
                )
                figure = measure_in_own_process(size, fixed)
                cells.append(f"{figure['seconds']} ({figure['ms_per_output']})")
            else:
                cells.append("not measured")
        print(f"| {size} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
