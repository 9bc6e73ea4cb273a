"""`python -m k8s_tests.bench [--quick] [--repetitions N] [--kind-cluster NAME]` (`make bench`)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from pathlib import Path

from k8s_tests.bench import backfill, cases, scale
from k8s_tests.bench.deployment import (
    bench_cluster,
    chart_default_poll_interval,
    install,
    set_poll_interval,
    use_project_image,
)
from k8s_tests.bench.report import Results, machine_summary
from k8s_tests.harness.cluster import ARTIFACTS_DIR, read_versions
from k8s_tests.harness.deployment import Deployment

DEFAULT_REPETITIONS = 3
RESULTS_DIR = ARTIFACTS_DIR / "bench"
# The images come from `make image`; the raw data is (re)loaded so every release reads the same rows.
DEFAULT_UP_STEPS = "load install port-forward raw-data"
# Case numbers of issue 6 (4's launch overhead is read off the releases of cases 1 and 2), and of
# issue 14: 6, the platform's cost by project size; 7, a backfill of many partitions.
ALL_CASES = ("1", "2", "3", "4", "5", "6", "7")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m k8s_tests.bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one repetition of each case at its smallest size, under the chart's poll interval only: "
        "a check that it all works",
    )
    parser.add_argument(
        "--repetitions", type=int, default=DEFAULT_REPETITIONS, help=f"samples per case (default {DEFAULT_REPETITIONS})"
    )
    parser.add_argument(
        "--kind-cluster",
        metavar="NAME",
        help="an existing kind cluster (default: create or reuse dagster-dbt-k8s-bench)",
    )
    parser.add_argument(
        "--up-steps",
        default=DEFAULT_UP_STEPS,
        help=f"hack/up.sh steps before measuring (default: {DEFAULT_UP_STEPS!r})",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=RESULTS_DIR,
        help=f"where results.json and results.md go (default {RESULTS_DIR})",
    )
    parser.add_argument(
        "--cases", nargs="+", choices=ALL_CASES, default=list(ALL_CASES), help="the cases to run (default: all)"
    )
    parser.add_argument(
        "--scale-models",
        type=int,
        nargs="+",
        help=f"case 6's project sizes (default {scale.SCALE_MODELS}; --quick: {scale.SCALE_MODELS_QUICK})",
    )
    parser.add_argument(
        "--scale-eviction-only",
        action="store_true",
        help="case 6 without its uninterrupted release and dbt build alone, which take two thirds of its "
        "time at 5,000 models: the build, parse, start-up, memory and the evicted release with its retry",
    )
    parser.add_argument(
        "--backfill-days",
        type=int,
        help=f"case 7's daily partitions (default {backfill.BACKFILL_DAYS}; --quick: {backfill.BACKFILL_DAYS_QUICK})",
    )
    args = parser.parse_args(argv)
    if args.backfill_days is None:
        args.backfill_days = backfill.BACKFILL_DAYS_QUICK if args.quick else backfill.BACKFILL_DAYS
    if args.quick:
        args.repetitions = 1
    if args.scale_models is None:
        args.scale_models = scale.SCALE_MODELS_QUICK if args.quick else scale.SCALE_MODELS
    return args


def run_cases(deployment: Deployment, results: Results, args: argparse.Namespace) -> None:
    """Faults under the chart's poll interval first, then (not with --quick) under Dagster's
    default; the other cases run under the chart's. Cases 3 and 6 come last, as they switch the
    release to other images and data; their graceful evictions are noticed at once under either
    poll interval. Case 7 (the example's microbatch model) runs before them."""
    repetitions, selected = args.repetitions, set(args.cases)
    chart_poll = chart_default_poll_interval()
    chart_label = f"poll {chart_poll}s (chart default)"
    dagster_label = f"poll {cases.DAGSTER_DEFAULT_POLL_SECONDS}s (Dagster default)"
    set_poll_interval(deployment, chart_poll)
    for repetition in range(1, repetitions + 1):
        if not selected & {"1", "2", "4", "5"}:
            break
        print(f"== repetition {repetition}/{repetitions}, {chart_label}", flush=True)
        if "1" in selected:
            cases.retry_strategies(deployment, results, chart_label)
        if "2" in selected:
            cases.recovery_latency(deployment, results, chart_label, ["hard kill"])
        if "5" in selected:
            cases.pool_handover(deployment, results, cases.SNAPSHOT_RUNS_QUICK if args.quick else cases.SNAPSHOT_RUNS)
        if "4" in selected:
            cases.code_location_cold_start(deployment, results)
    # --quick checks that each case works: under the chart's poll interval only.
    if "2" in selected and not args.quick:
        set_poll_interval(deployment, cases.DAGSTER_DEFAULT_POLL_SECONDS)
        for repetition in range(1, repetitions + 1):
            print(f"== repetition {repetition}/{repetitions}, {dagster_label}", flush=True)
            cases.recovery_latency(deployment, results, dagster_label, ["eviction", "hard kill"])
    if "7" in selected:
        backfill.backfill(deployment, results, args.backfill_days)
    growth_models, data_sizes = (
        (cases.GROWTH_MODELS_QUICK, cases.GROWTH_DATA_SIZES_QUICK)
        if args.quick
        else (cases.GROWTH_MODELS, cases.GROWTH_DATA_SIZES)
    )
    # --quick's cases 3 and 6, at the same size, share one image.
    shared = args.quick and {"3", "6"} <= selected and tuple(args.scale_models) == growth_models
    try:
        if "3" in selected:
            growth_image = scale.shared_image if shared else cases.synthetic_image
            cases.growth(deployment, results, growth_models, data_sizes, repetitions, growth_image)
        if "6" in selected:
            scale_image = scale.shared_image if shared else scale.scale_image
            scale.scale(deployment, results, tuple(args.scale_models), scale_image, not args.scale_eviction_only)
    finally:
        if selected & {"3", "6"}:
            use_project_image(deployment, read_versions()["PROJECT_IMAGE"])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    results = Results(command=shlex.join(["python", "-m", "k8s_tests.bench", *argv]), machine=machine_summary())
    cluster = bench_cluster(args.kind_cluster)
    deployment = install(cluster, args.up_steps, chart_default_poll_interval())
    try:
        run_cases(deployment, results, args)
    except Exception as error:
        traceback.print_exc()
        results.error = f"{type(error).__name__}: {error}"[:2000]
    finally:
        deployment.webserver.stop()
        deployment.postgresql.stop()
        table = results.write(args.output_dir)
    print(f"\n{table.read_text()}\nwritten: {table} and results.json beside it; {time.monotonic() - start:.0f}s in all")
    return 1 if results.error else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
