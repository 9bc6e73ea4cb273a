"""The chart's objects, rendered with its defaults and with each values file of its ci/ folder,
accepted by a real API server: `kubectl apply --dry-run=server` runs the server's schema
validation, defaulting and admission, without creating anything. The namespace enforces, and
warns on, the Pod Security Standard "restricted" (for workloads, admission only warns: a warning
fails the test)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from k8s_tests.harness.cluster import KindCluster, tool
from k8s_tests.harness.deployment import CHART_DIR, RELEASE_NAME

VALUES_FILES = [None, *sorted((CHART_DIR / "ci").glob("*.yaml"))]
RESTRICTED_LABELS = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}


def priority_classes(values: object) -> set[str]:
    """Every priorityClassName a values document sets."""
    if isinstance(values, dict):
        found = {values["priorityClassName"]} if isinstance(values.get("priorityClassName"), str) else set()
        return found.union(*(priority_classes(value) for value in values.values()))
    if isinstance(values, list):
        return set().union(*(priority_classes(value) for value in values))
    return set()


@pytest.fixture(scope="module")
def restricted_namespace(namespace: str, core_v1: client.CoreV1Api, k8s_client: client.ApiClient) -> Iterator[str]:
    """The test namespace, "restricted", with the PriorityClasses the values files name (admission
    refuses a Pod whose class does not exist)."""
    core_v1.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED_LABELS}})
    scheduling = client.SchedulingV1Api(k8s_client)
    names = set().union(*(priority_classes(yaml.safe_load(path.read_text())) for path in VALUES_FILES if path))
    for name in sorted(names):
        try:
            scheduling.create_priority_class(
                client.V1PriorityClass(metadata=client.V1ObjectMeta(name=name), value=1000)
            )
        except client.ApiException as error:
            if error.status != 409:  # left by an interrupted session: the same object
                raise
    yield namespace
    for name in sorted(names):
        scheduling.delete_priority_class(name)


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda path: path.name if path else "defaults")
def test_rendered_chart_is_accepted_by_the_api_server(
    kind_cluster: KindCluster, restricted_namespace: str, values_file: Path | None
) -> None:
    values_args = ["--values", str(values_file)] if values_file else []
    rendered = subprocess.run(
        [tool("helm"), "template", RELEASE_NAME, str(CHART_DIR), "--namespace", restricted_namespace, *values_args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    applied = subprocess.run(
        [
            tool("kubectl"),
            "--kubeconfig",
            str(kind_cluster.kubeconfig),
            "apply",
            "--dry-run=server",
            "--namespace",
            restricted_namespace,
            "--filename",
            "-",
        ],
        input=rendered,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert applied.returncode == 0, applied.stderr
    assert "would violate PodSecurity" not in applied.stderr, applied.stderr
    accepted = [line for line in applied.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(objects), applied.stdout
