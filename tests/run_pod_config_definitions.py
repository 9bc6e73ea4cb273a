"""A job whose definitions declare their own run pod config, as a project's image would (for the
run coordinator's tests: what the definitions declare is trusted, what a launch adds is not)."""

from __future__ import annotations

import json

import dagster as dg

DECLARED_K8S_CONFIG = json.dumps({"container_config": {"env": [{"name": "DECLARED_BY", "value": "definitions"}]}})


@dg.op
def noop() -> None:
    pass


@dg.job(tags={"dagster-k8s/config": DECLARED_K8S_CONFIG})
def declared_k8s_config_job() -> None:
    noop()


defs = dg.Definitions(jobs=[declared_k8s_config_job])
