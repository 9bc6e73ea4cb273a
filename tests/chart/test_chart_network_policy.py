"""NetworkPolicies (networkPolicy.enabled, on by default): the embedded PostgreSQL accepts only this
release's pods, each code server's gRPC port only the webserver, the daemon, the run pods and the
helm test pod. The selectors are checked against the labels of the pods the chart renders and of
the run pod dagster_k8s builds from the launcher's config, so a label renamed on either side fails
here. Enforcement itself is proven on kind (k8s_tests/test_network_policy.py)."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import CHART_DIR, Rendered, run_worker_job

LOCATIONS_VALUES = CHART_DIR / "ci" / "code-locations-values.yaml"
EXTERNAL_POSTGRESQL_VALUES = CHART_DIR / "ci" / "external-postgresql-values.yaml"
COMPONENT = "app.kubernetes.io/component"
INSTANCE = "app.kubernetes.io/instance"
# The pods allowed to call a code server, by component label.
GRPC_CLIENTS = {"webserver", "daemon", "run-worker", "test"}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels, matchExpressions) matched against a pod's labels, as the
    API server does."""
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def pods(rendered: Rendered) -> dict[str, tuple[dict[str, str], dict[str, Any]]]:
    """Every pod the release makes, by kind/name, with its labels and spec: the rendered workloads,
    hooks and helm test pod, and the run pod the launcher creates."""
    found = {}
    for doc in rendered.docs:
        if doc["kind"] == "Pod":
            found[f"Pod/{doc['metadata']['name']}"] = (doc["metadata"]["labels"], doc["spec"])
        elif doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
            template = doc["spec"]["template"]
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = (template["metadata"]["labels"], template["spec"])
    run = run_worker_job(rendered.instance_config()["run_launcher"]["config"])["spec"]["template"]
    found["run pod"] = (run["metadata"]["labels"], run["spec"])
    return found


def policies(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in rendered.of_kind("NetworkPolicy")}


def selected_by(policy: dict[str, Any], release_pods: dict[str, tuple[dict[str, str], dict[str, Any]]]) -> set[str]:
    return {name for name, (labels, _) in release_pods.items() if selects(policy["spec"]["podSelector"], labels)}


def allowed_sources(policy: dict[str, Any], release_pods) -> set[str]:
    """The pods one ingress rule of `policy` lets in (peers of this namespace only: no namespaceSelector)."""
    (rule,) = policy["spec"]["ingress"]
    for peer in rule["from"]:
        assert set(peer) == {"podSelector"}, f"{policy['metadata']['name']}: a peer beyond this namespace: {peer}"
    return {
        name
        for name, (labels, _) in release_pods.items()
        if any(selects(peer["podSelector"], labels) for peer in rule["from"])
    }


def named_port(policy: dict[str, Any], release_pods, targets: set[str]) -> None:
    """The policy's one port is a named TCP port that every pod it protects declares."""
    (rule,) = policy["spec"]["ingress"]
    (port,) = rule["ports"]
    assert port["protocol"] == "TCP"
    for target in targets:
        declared = {
            p["name"]: p.get("protocol", "TCP")
            for container in release_pods[target][1]["containers"]
            for p in container.get("ports") or []
        }
        assert declared.get(port["port"]) == "TCP", f"{target} declares no TCP port named {port['port']}: {declared}"


def by_component(release_pods) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, (labels, _) in release_pods.items():
        found.setdefault(labels[COMPONENT], set()).add(name)
    return found


def test_on_by_default_for_postgresql_and_the_code_location(render):
    rendered = render()
    assert {
        policy["spec"]["podSelector"]["matchLabels"][COMPONENT] for policy in rendered.of_kind("NetworkPolicy")
    } == {
        "postgresql",
        "code-location",
    }
    for policy in rendered.of_kind("NetworkPolicy"):
        assert policy["spec"]["policyTypes"] == ["Ingress"], "egress is not restricted"


def test_none_when_disabled(render):
    assert render(set_values={"networkPolicy.enabled": "false"}).of_kind("NetworkPolicy") == []


def test_no_postgresql_policy_with_an_external_server(render):
    rendered = render(EXTERNAL_POSTGRESQL_VALUES)
    assert [
        policy["spec"]["podSelector"]["matchLabels"][COMPONENT] for policy in rendered.of_kind("NetworkPolicy")
    ] == ["code-location"]


@pytest.mark.parametrize("values_file", [None, LOCATIONS_VALUES], ids=["default", "code-locations"])
def test_postgresql_accepts_every_pod_of_the_release_and_only_them(render, values_file):
    rendered = render(values_file)
    release_pods = pods(rendered)
    (policy,) = [
        p for p in policies(rendered).values() if p["spec"]["podSelector"]["matchLabels"][COMPONENT] == "postgresql"
    ]
    components = by_component(release_pods)
    assert selected_by(policy, release_pods) == components["postgresql"]
    # Every pod: webserver, daemon, each code server, the run pod, both hooks, the helm test pod.
    assert allowed_sources(policy, release_pods) == set(release_pods)
    assert {"webserver", "daemon", "run-worker", "migrate", "pools", "test"} <= set(components)
    named_port(policy, release_pods, components["postgresql"])
    # Another release's pods (same namespace, same chart) do not get in.
    other_release = {
        f"other {name}": ({**labels, INSTANCE: "another-release"}, spec)
        for name, (labels, spec) in release_pods.items()
    }
    assert allowed_sources(policy, other_release) == set()


def test_each_code_location_accepts_only_its_callers(render):
    rendered = render(LOCATIONS_VALUES)
    release_pods = pods(rendered)
    components = by_component(release_pods)
    locations = sorted(component for component in components if component.startswith("code-location"))
    assert locations == ["code-location", "code-location-finance", "code-location-marketing"]
    by_target = {
        policy["spec"]["podSelector"]["matchLabels"][COMPONENT]: policy
        for policy in policies(rendered).values()
        if policy["spec"]["podSelector"]["matchLabels"][COMPONENT] != "postgresql"
    }
    assert sorted(by_target) == locations, "one NetworkPolicy per code location"
    callers = set().union(*(components[component] for component in GRPC_CLIENTS))
    for location in locations:
        policy = by_target[location]
        # Exactly this location's pods: not another location's, not PostgreSQL's.
        assert selected_by(policy, release_pods) == components[location], location
        assert allowed_sources(policy, release_pods) == callers, location
        named_port(policy, release_pods, components[location])
