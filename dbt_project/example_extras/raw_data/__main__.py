"""CLI: `python -m example_extras.raw_data --conninfo ... --seed 42 --size 1` loads the raw tables.

`--apply-changes` instead applies the deterministic source change used by the snapshot tests.
Prints a JSON summary (the known totals, or what changed) on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from example_extras.raw_data.generator import apply_source_changes, generate, load, summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_extras.raw_data", description=__doc__)
    parser.add_argument("--conninfo", required=True, help="libpq connection string of the warehouse")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--size", type=int, default=1, help="scale factor, >= 1 (default 1)")
    parser.add_argument(
        "--apply-changes",
        action="store_true",
        help="change a few loaded rows (for snapshot tests) instead of loading",
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    if args.apply_changes:
        result = dataclasses.asdict(apply_source_changes(args.conninfo))
        what = "applied source changes"
    else:
        data = generate(seed=args.seed, size=args.size)
        load(args.conninfo, data)
        result = summarize(data)
        what = f"loaded raw data (seed={args.seed}, size={args.size})"
    print(json.dumps(result, indent=2, default=str))
    print(f"{what} in {time.monotonic() - started:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
