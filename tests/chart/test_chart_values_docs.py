"""values.yaml documents every key, and values.schema.json types exactly the keys values.yaml has."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml
from chart_render import CHART_DIR, SCENARIO_IDS, SCENARIOS, load_values

VALUES_TEXT = (CHART_DIR / "values.yaml").read_text()
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/]+):(?: |$)")


def test_every_values_key_has_a_comment_above_it():
    lines = VALUES_TEXT.splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match:
            continue
        above = next((lines[i] for i in range(number - 1, -1, -1) if lines[i].strip()), "")
        if not (above.strip().startswith("#") and above.startswith(match["indent"] + "#")):
            undocumented.append(f"line {number + 1}: {match['key']}")
    assert not undocumented, f"keys without a comment above them: {undocumented}"


def _walk(values: Any, schema: dict[str, Any], path: str, problems: list[str]) -> None:
    if "properties" not in schema:
        return  # a map (pool limits, annotations, resource quantities) or a scalar
    assert schema.get("additionalProperties") is False, f"{path or '/'}: additionalProperties is not false"
    if not isinstance(values, dict):
        problems.append(f"{path}: values.yaml has {values!r}, the schema an object")
        return
    for key in values.keys() - schema["properties"].keys():
        problems.append(f"{path}/{key}: in values.yaml, not in the schema")
    for key in schema["properties"].keys() - values.keys():
        problems.append(f"{path}/{key}: in the schema, not in values.yaml")
    for key in values.keys() & schema["properties"].keys():
        _walk(values[key], schema["properties"][key], f"{path}/{key}", problems)


def test_schema_and_values_have_the_same_keys():
    problems: list[str] = []
    _walk(yaml.safe_load(VALUES_TEXT), SCHEMA, "", problems)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_shipped_values_validate_against_the_schema(values_file):
    jsonschema.validate(load_values(values_file), SCHEMA)


def test_the_values_contract_with_local_dev():
    """Keys the local-dev renderer reads from values.yaml (a contract with the dagster_code side)."""
    values = yaml.safe_load(VALUES_TEXT)
    pools = values["concurrency"]["pools"]
    assert pools["granularity"] == "op" and pools["defaultLimit"] == 1
    assert pools["limits"] == {"dbt-snapshots": 1}
    assert values["concurrency"]["runs"] == {
        "maxConcurrentRuns": 10,
        "dequeueIntervalSeconds": 1,
        "tagConcurrencyLimits": [],
    }
    retries = values["dagsterDaemon"]["runRetries"]
    assert retries == {
        "enabled": True,
        "maxRetries": 2,
        "retryOnAssetOrOpFailure": False,
        "strategy": "FROM_ASSET_FAILURE",
    }
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert set(monitoring) == {
        "enabled",
        "pollIntervalSeconds",
        "startTimeoutSeconds",
        "cancelTimeoutSeconds",
        "freeSlotsAfterRunEndSeconds",
        "maxResumeRunAttempts",
    }
    assert monitoring["maxResumeRunAttempts"] == 0


def test_every_pod_block_takes_the_keys_documented_in_pod_defaults():
    """The components' `pod` blocks are `{}` in values.yaml; their keys are documented once, in podDefaults."""
    values = yaml.safe_load(VALUES_TEXT)
    documented = set(values["podDefaults"])
    definitions = SCHEMA["definitions"]
    assert set(definitions["podOverrides"]["properties"]) == documented
    # Pods that must finish (hooks, helm test, run pods) take every key but extraContainers.
    assert set(definitions["finitePodOverrides"]["properties"]) == documented - {"extraContainers"}
    blocks = {key: section["pod"] for key, section in values.items() if isinstance(section, dict) and "pod" in section}
    assert set(blocks) == {
        "codeLocation",
        "dagsterWebserver",
        "dagsterDaemon",
        "postgresql",
        "runLauncher",
        "migrate",
        "test",
    }
    for key, block in blocks.items():
        assert block == {}, f"{key}.pod: the chart's defaults live in podDefaults"
        ref = SCHEMA["properties"][key]["properties"]["pod"]["$ref"]
        assert ref in ("#/definitions/podOverrides", "#/definitions/finitePodOverrides"), key
