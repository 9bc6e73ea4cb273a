"""NetworkPolicies (networkPolicy.enabled, on by default): default-deny, ingress and egress, for
every pod of the release; the embedded PostgreSQL accepts only this release's pods, each code
server's gRPC port only the webserver, the daemon, the run pods and the helm test pod, the
webserver only the helm test pod and networkPolicy.webserver.ingressFrom; each pod reaches only
what the matrix below says (plus DNS, the API server for the webserver and the daemon, and the
extra egress values). The selectors are checked against the labels of the pods the chart renders and of
the run pod dagster_k8s builds from the launcher's config, so a label renamed on either side fails
here. Enforcement itself is proven on kind (k8s_tests/test_network_policy.py)."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import CHART_DIR, Rendered, render_values, run_worker_job

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


def component_of(policy: dict[str, Any]) -> str | None:
    return policy["spec"]["podSelector"].get("matchLabels", {}).get(COMPONENT)


def peer_selects(peer: dict[str, Any], labels: dict[str, str]) -> bool:
    """A peer of this namespace (podSelector only) or an ipBlock/namespaceSelector (never a pod here)."""
    return set(peer) == {"podSelector"} and selects(peer["podSelector"], labels)


def port_number(port: dict[str, Any], spec: dict[str, Any]) -> int | None:
    """A NetworkPolicyPort's number on the destination pod (a named port resolved on its spec)."""
    if isinstance(port["port"], int):
        return port["port"]
    declared = {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports") or []}
    return declared.get(port["port"])


def rule_lets(rule: dict[str, Any], peers_key: str, peer_labels: dict[str, str], port: int, spec) -> bool:
    peers = rule.get(peers_key)
    peer_ok = not peers or any(peer_selects(peer, peer_labels) for peer in peers)
    ports = rule.get("ports")
    port_ok = not ports or any(p.get("protocol", "TCP") == "TCP" and port_number(p, spec) == port for p in ports)
    return peer_ok and port_ok


def allowed(rendered: Rendered, release_pods, source: str, target: str, port: int) -> bool:
    """A TCP connection from pod `source` to `port` of pod `target`, both of this namespace, as a
    NetworkPolicy implementation decides it: the source's egress and the target's ingress."""
    (source_labels, _), (target_labels, target_spec) = release_pods[source], release_pods[target]

    def direction(labels, policy_type, rules_key, peers_key, peer_labels) -> bool:
        selecting = [
            p
            for p in rendered.of_kind("NetworkPolicy")
            if selects(p["spec"]["podSelector"], labels) and policy_type in p["spec"]["policyTypes"]
        ]
        return not selecting or any(
            rule_lets(rule, peers_key, peer_labels, port, target_spec)
            for p in selecting
            for rule in p["spec"].get(rules_key) or []
        )

    return direction(source_labels, "Egress", "egress", "to", target_labels) and direction(
        target_labels, "Ingress", "ingress", "from", source_labels
    )


def connections(rendered: Rendered) -> set[tuple[str, str]]:
    """(source component, target component) of every pair of pods that may connect on a port the
    target declares."""
    release_pods = pods(rendered)
    found = set()
    for source, (source_labels, _) in release_pods.items():
        for target, (target_labels, spec) in release_pods.items():
            ports = [p["containerPort"] for c in spec["containers"] for p in c.get("ports") or []]
            if source != target and any(allowed(rendered, release_pods, source, target, port) for port in ports):
                found.add((source_labels[COMPONENT], target_labels[COMPONENT]))
    return found


# Who may connect to whom inside the release, by component (code-location stands for every location).
EXPECTED_CONNECTIONS = {
    ("webserver", "postgresql"),
    ("webserver", "code-location"),
    ("daemon", "postgresql"),
    ("daemon", "code-location"),
    ("run-worker", "postgresql"),
    ("run-worker", "code-location"),
    ("code-location", "postgresql"),
    ("migrate", "postgresql"),
    ("pools", "postgresql"),
    ("test", "webserver"),
    ("test", "code-location"),
}


def test_default_deny_ingress_and_egress_for_every_pod_of_the_release(render):
    rendered = render()
    release_pods = pods(rendered)
    (deny,) = [p for p in rendered.of_kind("NetworkPolicy") if component_of(p) is None]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert selected_by(deny, release_pods) == set(release_pods)
    assert "ingress" not in deny["spec"]
    # DNS only: port 53, any address (the resolver is a Service).
    (dns,) = deny["spec"]["egress"]
    assert "to" not in dns and sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert connections(rendered) == EXPECTED_CONNECTIONS


def test_code_locations_connections(render):
    rendered = render(LOCATIONS_VALUES)
    collapsed = {
        tuple("code-location" if c.startswith("code-location") else c for c in pair) for pair in connections(rendered)
    }
    assert collapsed == EXPECTED_CONNECTIONS


def test_only_the_webserver_and_the_daemon_reach_the_api_server(render):
    rendered = render(set_values={"networkPolicy.kubernetesApi.to[0].ipBlock.cidr": "172.18.0.2/32"})
    reaching = set()
    for policy in rendered.of_kind("NetworkPolicy"):
        for rule in policy["spec"].get("egress") or []:
            if {"ipBlock": {"cidr": "172.18.0.2/32"}} in (rule.get("to") or []):
                assert sorted(p["port"] for p in rule["ports"]) == [443, 6443]
                reaching.add(component_of(policy))
    assert reaching == {"webserver", "daemon"}


def test_without_a_cluster_to_ask_the_api_ports_open_to_any_address(render):
    """`helm template` has no EndpointSlice to look up: the ports alone, any address (values.yaml says so)."""
    for component in ("webserver", "daemon"):
        (policy,) = [p for p in render().of_kind("NetworkPolicy") if component_of(p) == component]
        assert {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]} in policy["spec"][
            "egress"
        ]


def test_extra_egress_goes_to_every_project_pod_and_the_webservers_to_it_alone(helm, tmp_path):
    s3 = {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"protocol": "TCP", "port": 9000}]}
    issuer = {"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    rendered = render_values(
        helm, tmp_path, {"networkPolicy": {"extraEgress": [s3], "webserver": {"extraEgress": [issuer]}}}
    )
    by = {component_of(p): p["spec"].get("egress") or [] for p in rendered.of_kind("NetworkPolicy")}
    for component in ("webserver", "daemon", "run-worker", "code-location", "migrate", "pools"):
        assert s3 in by[component], component
    assert [c for c, rules in by.items() if issuer in rules] == ["webserver"]
    assert s3 not in by["test"] and s3 not in by["postgresql"]


def test_the_webserver_admits_what_ingress_from_names(helm, tmp_path):
    controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    rendered = render_values(helm, tmp_path, {"networkPolicy": {"webserver": {"ingressFrom": [controller]}}})
    (policy,) = [p for p in rendered.of_kind("NetworkPolicy") if component_of(p) == "webserver"]
    (rule,) = policy["spec"]["ingress"]
    assert controller in rule["from"] and rule["ports"] == [{"protocol": "TCP", "port": "http"}]
    assert connections(rendered) == EXPECTED_CONNECTIONS


def test_none_when_disabled(render):
    assert render(set_values={"networkPolicy.enabled": "false"}).of_kind("NetworkPolicy") == []


def test_no_postgresql_policy_with_an_external_server(render):
    rendered = render(EXTERNAL_POSTGRESQL_VALUES)
    assert "postgresql" not in [component_of(p) for p in rendered.of_kind("NetworkPolicy")]
    # The external server is reached through networkPolicy.extraEgress: nothing of the embedded one.
    for policy in rendered.of_kind("NetworkPolicy"):
        assert "postgresql" not in str(policy["spec"].get("egress")), policy["metadata"]["name"]


@pytest.mark.parametrize("values_file", [None, LOCATIONS_VALUES], ids=["default", "code-locations"])
def test_postgresql_accepts_every_pod_of_the_release_and_only_them(render, values_file):
    rendered = render(values_file)
    release_pods = pods(rendered)
    (policy,) = [p for p in policies(rendered).values() if component_of(p) == "postgresql"]
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
        component_of(policy): policy
        for policy in policies(rendered).values()
        if (component_of(policy) or "").startswith("code-location")
    }
    assert sorted(by_target) == locations, "one NetworkPolicy per code location"
    callers = set().union(*(components[component] for component in GRPC_CLIENTS))
    for location in locations:
        policy = by_target[location]
        # Exactly this location's pods: not another location's, not PostgreSQL's.
        assert selected_by(policy, release_pods) == components[location], location
        assert allowed_sources(policy, release_pods) == callers, location
        named_port(policy, release_pods, components[location])
