"""`make materialize SELECT="tag:nightly +my_model"`: materialize the dbt assets a dbt
selection picks, as a run submitted to the running Dagster (`make dev`) through its GraphQL
API, the way the UI's asset selection box launches one.

A selection that touches a release model takes the whole release (every release model and the
release's two steps: blue prepared from green first, the promoted models promoted after): green
only ever publishes a whole release, built by one run group, never a mix of two.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import dagster as dg
from dagster_dbt.utils import select_unique_ids
from dagster_graphql import DagsterGraphQLClient

from dagster_code.project import dbt_project
from dagster_code.project_definitions import build_definitions
from dagster_code.run_coordinator import RELEASE_TAG

ASSET_JOB = "__ASSET_JOB"


def selected_asset_keys(defs: dg.Definitions, dbt_select: str) -> list[dg.AssetKey]:
    """The assets dbt's own selection engine picks; a model's asset key is its name."""
    graph = defs.resolve_asset_graph()
    manifest = json.loads(dbt_project().manifest_path.read_text())
    unique_ids = select_unique_ids(dbt_select, "", "", dbt_project(), manifest)
    keys = {
        dg.AssetKey([manifest["nodes"][unique_id]["name"]])
        for unique_id in unique_ids
        if unique_id in manifest["nodes"]
    } & set(graph.get_all_asset_keys())
    if not keys:
        raise SystemExit(f"the dbt selection '{dbt_select}' matches no asset")
    release = {node.key for node in graph.asset_nodes if RELEASE_TAG in node.tags}
    if keys & release:
        keys |= release
    return sorted(keys, key=lambda key: key.to_user_string())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", help='dbt selection syntax, e.g. "tag:nightly +my_model"')
    parser.add_argument("--host", default=os.environ.get("DAGSTER_WEBSERVER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEV_WEBSERVER_PORT", "3000")))
    args = parser.parse_args()
    if not args.select.strip():
        parser.error('SELECT is empty: make materialize SELECT="tag:nightly +my_model"')

    defs = build_definitions(dbt_project())
    keys = selected_asset_keys(defs, args.select)
    print("Materializing:", ", ".join(key.to_user_string() for key in keys))
    client = DagsterGraphQLClient(args.host, port_number=args.port)
    # The run coordinator gives the run its retry strategy and, for a release, its release tag.
    run_id = client.submit_job_execution(ASSET_JOB, asset_selection=keys)
    print(f"Run {run_id}: http://{args.host}:{args.port}/runs/{run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
