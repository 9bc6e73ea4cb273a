"""What a launch may change about its run pod: only the keys the chart allows.

dagster_k8s builds a run's pod from the launcher's config, deep-merged with the run's
`dagster-k8s/config` tag (and the older `dagster-k8s/resource_requirements`, the container's
resources). A run's tags are its job definition's run tags overridden by whatever the launch sent
(the UI's launchpad, a GraphQL or Python client, a backfill, a re-execution that copies its
parent's). Anyone who can reach the webserver could therefore run another image or command, with
other env or volumes, in a pod that holds the instance's secrets. So a launch may set only the keys
of `allowedKeys` (the chart's `runLauncher.runTagK8sConfig.allowedKeys`), and config that the
definitions in the image declare (the job's run tags, as recorded in the run's job snapshot, which
the code server made) stays trusted: a key whose value equals the definitions' is fine, any other
is refused.

Only run tags reach the run pod: jobs use the in-process executor (project_definitions.py), so op
tags and an executor's step config start no pod. Run config reaches the run worker's process
instead: its `resources` section would reconfigure the dbt resource (its executable, project
directory), so a launch may not set it either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from dagster._core.instance import DagsterInstance
from dagster._core.storage.dagster_run import DagsterRun
from dagster_k8s.job import K8S_RESOURCE_REQUIREMENTS_KEY, USER_DEFINED_K8S_CONFIG_KEY

# The values setting that governs the allowlist (one owner: the chart's values.yaml, rendered into
# the run coordinator's config).
ALLOWED_KEYS_SETTING = "runLauncher.runTagK8sConfig.allowedKeys"
# What the legacy resources tag sets, as a key of dagster-k8s/config.
RESOURCES_KEY = "container_config.resources"
# On a refused run: it got no pod, and why.
REFUSED_TAG = "dagster-dbt-k8s/refused"
# Run config sections a launch may not set: they configure code that runs in the pod.
REFUSED_RUN_CONFIG_SECTIONS = ("resources",)


class RunPodConfigRefused(Exception):
    """A run whose launch set Kubernetes config (or run config) that the chart does not allow."""


def canonical_key(key: str) -> str:
    """`container_config.securityContext` and `container_config.security_context` are one key to
    dagster_k8s (it accepts both spellings), so they are compared in snake case."""
    return ".".join(re.sub(r"(?<!^)(?=[A-Z])", "_", part).lower() for part in key.split("."))


def k8s_config_keys(tags: Mapping[str, str]) -> dict[str, object]:
    """The run pod keys the tags set, as `section.field` (or `section` when it is not a map, e.g.
    merge_behavior), with their values; a tag that is not JSON is returned whole under its name."""
    keys: dict[str, object] = {}
    tag_value = tags.get(USER_DEFINED_K8S_CONFIG_KEY)
    if tag_value is not None:
        try:
            config = json.loads(tag_value)
        except ValueError:
            config = None
        if not isinstance(config, dict):
            keys[USER_DEFINED_K8S_CONFIG_KEY] = tag_value
        else:
            for section, value in config.items():
                if isinstance(value, dict):
                    keys.update({canonical_key(f"{section}.{field}"): v for field, v in value.items()})
                else:
                    keys[canonical_key(section)] = value
    if K8S_RESOURCE_REQUIREMENTS_KEY in tags:
        keys[f"{K8S_RESOURCE_REQUIREMENTS_KEY} ({RESOURCES_KEY})"] = tags[K8S_RESOURCE_REQUIREMENTS_KEY]
    return keys


def launched_keys(run_tags: Mapping[str, str], definition_tags: Mapping[str, str]) -> list[str]:
    """The keys whose value in the run differs from the definitions' (set, changed or removed)."""
    run_keys, definition_keys = k8s_config_keys(run_tags), k8s_config_keys(definition_tags)
    return sorted(k for k in run_keys.keys() | definition_keys.keys() if run_keys.get(k) != definition_keys.get(k))


def is_allowed(key: str, allowed_keys: Iterable[str]) -> bool:
    allowed = {canonical_key(k) for k in allowed_keys}
    if key.startswith(K8S_RESOURCE_REQUIREMENTS_KEY):
        return RESOURCES_KEY in allowed
    return key in allowed


def definition_run_tags(instance: DagsterInstance, run: DagsterRun) -> Mapping[str, str]:
    """The run tags the job's definitions declare, from the snapshot the code server made."""
    snapshot = instance.get_job_snapshot(run.job_snapshot_id) if run.job_snapshot_id else None
    if snapshot is None:
        return {}
    return snapshot.run_tags if snapshot.run_tags is not None else (snapshot.tags or {})


def refusal(instance: DagsterInstance, run: DagsterRun, allowed_keys: Iterable[str]) -> str | None:
    """Why the run must get no pod, or None: the keys its launch set beyond the allowlist."""
    allowed_keys = list(allowed_keys)
    launched = launched_keys(run.tags, definition_run_tags(instance, run))
    refused = [key for key in launched if not is_allowed(key, allowed_keys)]
    sections = [s for s in REFUSED_RUN_CONFIG_SECTIONS if s in (run.run_config or {})]
    if not refused and not sections:
        return None
    reasons = []
    if refused:
        reasons.append(
            f"its {USER_DEFINED_K8S_CONFIG_KEY} tag sets {', '.join(refused)} beyond what job {run.job_name}'s "
            f"definitions declare, and {ALLOWED_KEYS_SETTING} allows a launch only "
            f"{', '.join(allowed_keys) or 'nothing'}: any other key (image, command, args, env, volumes, service "
            "account, security context) would run what the caller chose in a pod holding the instance's secrets. "
            f"Declare the config on the job in the definitions, or add the key to {ALLOWED_KEYS_SETTING} in the "
            "chart's values"
        )
    if sections:
        reasons.append(
            f"its run config sets {', '.join(sections)}, which would reconfigure code the pod runs (the dbt resource); "
            "the definitions configure it"
        )
    return f"Refused, no pod created: run {run.run_id}: " + "; ".join(reasons) + "."
