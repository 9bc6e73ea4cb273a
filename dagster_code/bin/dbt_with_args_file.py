#!/usr/bin/env python3
"""`dbt`, with `--args-file PATH` standing for `--args <the file's text>`.

Linux refuses any single command-line argument over 128 KiB (MAX_ARG_STRLEN, E2BIG): a
release's run-operations carry its table list and each table's provenance as `--args`, which
outgrows that from a few thousand models. dagster_code.dbt_cli runs dbt through this script, so
the arguments travel in a file; the rest of the command line reaches dbt unchanged. It lives in a
folder of its own because Python puts a script's folder first on the import path.

It also makes dbt's selection by name read an index (dagster_code.dbt_selection): a run that
selects thousands of nodes would otherwise spend minutes selecting them.
"""

import sys
from pathlib import Path

from dbt.cli.main import cli

from dagster_code import dbt_selection

ARGS_FILE_FLAG = "--args-file"


def expanded(argv: list[str]) -> list[str]:
    """`argv` with each `--args-file PATH` replaced by `--args` and the text of PATH."""
    result = []
    rest = iter(argv)
    for arg in rest:
        if arg != ARGS_FILE_FLAG:
            result.append(arg)
            continue
        path = next(rest, None)
        if path is None:
            sys.exit(f"{ARGS_FILE_FLAG} needs the path of a file holding the operation's arguments")
        result += ["--args", Path(path).read_text(encoding="utf-8")]
    return result


if __name__ == "__main__":
    dbt_selection.install()
    sys.exit(cli(args=expanded(sys.argv[1:]), prog_name="dbt"))
