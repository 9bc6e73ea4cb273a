"""Scheduling and pod extras: podDefaults reach every pod, run pods included, and each component's
`pod` block overrides them by the rules documented above podDefaults in values.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import SCENARIO_IDS, SCENARIOS, Rendered, helm_template, load_values, render_values, run_worker_job
from dagster._config import process_config
from dagster_k8s import K8sRunLauncher
from test_chart_security import assert_restricted

# Each values block with a `pod` key -> the pods it configures: (kind, name suffix, main container).
# "RunJob" is the Job dagster-k8s builds for a run from the rendered launcher config.
POD_BLOCKS: dict[str, list[tuple[str, str, str]]] = {
    "codeLocation": [("Deployment", "-code-location", "code-server")],
    "dagsterWebserver": [("Deployment", "-webserver", "webserver")],
    "dagsterDaemon": [("Deployment", "-daemon", "daemon")],
    "postgresql": [("StatefulSet", "-postgresql", "postgresql")],
    "migrate": [("Job", "-migrate", "migrate"), ("Job", "-pools", "pools")],
    "test": [("Pod", "-test", "test")],
    "runLauncher": [("RunJob", "", "dagster")],
}
# Pods that never finish; the others (hooks, helm test, run pods) take no extraContainers.
LONG_RUNNING = {"codeLocation", "dagsterWebserver", "dagsterDaemon", "postgresql"}

EVERY_KEY = {
    "nodeSelector": {"pool": "dagster"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "dagster", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
            }
        }
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "priorityClassName": "dagster-default",
    "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    "podLabels": {"team": "data"},
    "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
    "envFrom": [{"secretRef": {"name": "extra-env"}}],
    "volumes": [{"name": "keys", "secret": {"secretName": "keys"}}],
    "volumeMounts": [{"name": "keys", "mountPath": "/keys", "readOnly": True}],
    "initContainers": [{"name": "db-proxy", "image": "proxy:1", "restartPolicy": "Always"}],
    "extraContainers": [{"name": "exporter", "image": "exporter:1", "securityContext": {"runAsUser": 2000}}],
}

# The chart's own tolerations of a lost node (nodeLoss), first on every pod but PostgreSQL's.
NODE_LOSS_TOLERATIONS = [
    {"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
]


def chart_tolerations(block: str) -> list[dict[str, Any]]:
    return [] if block == "postgresql" else NODE_LOSS_TOLERATIONS


def pods_of(rendered: Rendered, block: str) -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(where, pod metadata, pod spec, main container) of every pod a values block configures."""
    pods = []
    for kind, suffix, main in POD_BLOCKS[block]:
        if kind == "RunJob":
            template = run_worker_job(rendered.instance_config()["run_launcher"]["config"])["spec"]["template"]
        elif kind == "Pod":
            template = rendered.one(kind, suffix)
        else:
            template = rendered.one(kind, suffix)["spec"]["template"]
        spec = template["spec"]
        (container,) = [c for c in spec["containers"] if c["name"] == main]
        pods.append((f"{kind}/*{suffix}", template["metadata"], spec, container))
    return pods


def names(items: list[dict[str, Any]] | None) -> list[str]:
    return [item["name"] for item in items or []]


def _sets_no_extras(values_file: Path | None) -> bool:
    values = load_values(values_file)
    return not any(values["podDefaults"].values()) and not any(
        section.get("pod") for section in values.values() if isinstance(section, dict)
    )


PLAIN_SCENARIOS = [(f, i) for f, i in zip(SCENARIOS, SCENARIO_IDS, strict=True) if _sets_no_extras(f)]


@pytest.mark.parametrize("values_file", [f for f, _ in PLAIN_SCENARIOS], ids=[i for _, i in PLAIN_SCENARIOS])
def test_empty_defaults_add_nothing(render, values_file):
    """The byte-for-byte check against main is in the branch's report; this keeps its spirit."""
    rendered = render(values_file)
    for block in POD_BLOCKS:
        if block == "postgresql" and not rendered.of_kind("StatefulSet"):
            continue
        for where, _, spec, container in pods_of(rendered, block):
            for key in ("nodeSelector", "affinity", "priorityClassName"):
                assert not spec.get(key), f"{where}: {key}"
            assert spec.get("tolerations", []) == chart_tolerations(block), where
            # The auth proxy (dagsterWebserver.authProxy) is the chart's own sidecar, not an extra.
            assert [c for c in names(spec["containers"]) if c != "auth-proxy"] == [container["name"]], where
            assert set(names(spec.get("initContainers"))) <= {"wait-for-database"}, where
            assert set(names(spec.get("volumes"))) <= {"tmp", "instance", "workspace", "run", "data"}, where
            assert not {"team", "HTTPS_PROXY"} & set(names(container.get("env"))), where
    run_k8s_config = rendered.instance_config()["run_launcher"]["config"]["run_k8s_config"]
    assert set(run_k8s_config) == {"container_config", "pod_spec_config", "job_spec_config"}
    assert set(run_k8s_config["container_config"]) == {"securityContext", "env"}
    assert set(run_k8s_config["pod_spec_config"]) == {"automountServiceAccountToken", "securityContext", "tolerations"}
    code_location = rendered.one("Deployment", "-code-location")["spec"]["template"]["spec"]
    (constraint,) = code_location["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "kubernetes.io/hostname"


@pytest.mark.parametrize("block", POD_BLOCKS)
def test_pod_defaults_reach_every_pod(helm, tmp_path, block):
    rendered = render_values(helm, tmp_path, {"podDefaults": EVERY_KEY})
    for where, metadata, spec, container in pods_of(rendered, block):
        assert spec["nodeSelector"] == EVERY_KEY["nodeSelector"], where
        assert spec["affinity"] == EVERY_KEY["affinity"], where
        assert spec["priorityClassName"] == "dagster-default", where
        assert spec["tolerations"] == [*chart_tolerations(block), *EVERY_KEY["tolerations"]], where
        assert EVERY_KEY["topologySpreadConstraints"][0] in spec["topologySpreadConstraints"], where
        assert metadata["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false", where
        assert metadata["labels"]["team"] == "data", where
        assert metadata["labels"]["app.kubernetes.io/component"], where
        assert "HTTPS_PROXY" in names(container["env"]), where
        assert container["envFrom"][-1] == {"secretRef": {"name": "extra-env"}}, where
        assert container["volumeMounts"][-1] == {"name": "keys", "mountPath": "/keys", "readOnly": True}, where
        assert {"name": "keys", "secret": {"secretName": "keys"}} in spec["volumes"], where
        # Before the hooks' wait for the database: a native sidecar proxy is up first.
        assert names(spec["initContainers"])[0] == "db-proxy", where
        assert spec["initContainers"][0]["restartPolicy"] == "Always", where
        expected = ["exporter"] if block in LONG_RUNNING else []
        assert names(spec["containers"])[1:] == expected, where
        assert names(spec["containers"])[0] == container["name"], f"{where}: the chart's container comes first"


def test_hooks_and_code_servers_wait_for_the_database_with_the_extras(helm, tmp_path):
    """A code server that finds no database as it starts serves that error as its location's
    until a reload: its pod waits, as the hooks do, in the location's own image."""
    rendered = render_values(helm, tmp_path, {"podDefaults": EVERY_KEY, "codeLocation": {"image": {"tag": "own"}}})
    for kind, suffix in (("Job", "-migrate"), ("Job", "-pools"), ("Deployment", "-code-location")):
        spec = rendered.one(kind, suffix)["spec"]["template"]["spec"]
        (wait,) = [c for c in spec["initContainers"] if c["name"] == "wait-for-database"]
        assert names(wait["env"])[-2:] == ["HTTPS_PROXY", "WAIT_FOR_DATABASE_SECONDS"], suffix
        assert {"name": "keys", "mountPath": "/keys", "readOnly": True} in wait["volumeMounts"], suffix
        if kind == "Deployment":
            assert wait["image"] == spec["containers"][0]["image"], wait["image"]
            assert wait["image"].endswith(":own"), wait["image"]


@pytest.mark.parametrize("block", POD_BLOCKS)
def test_a_component_block_reaches_only_its_own_pods(helm, tmp_path, block):
    rendered = render_values(helm, tmp_path, {block: {"pod": {"podLabels": {"configured-by": block}}}})
    for other in POD_BLOCKS:
        for where, metadata, _, _ in pods_of(rendered, other):
            assert metadata["labels"].get("configured-by") == (block if other == block else None), where


def test_node_selector_affinity_and_priority_class_of_a_component_replace_the_defaults(helm, tmp_path):
    own = {
        "nodeSelector": {"disk": "ssd"},
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "priorityClassName": "dagster-critical",
    }
    values = {
        "podDefaults": EVERY_KEY,
        "dagsterDaemon": {"pod": own},
        "dagsterWebserver": {"pod": {"nodeSelector": {}}},
    }
    rendered = render_values(helm, tmp_path, values)
    ((_, _, daemon, _),) = pods_of(rendered, "dagsterDaemon")
    assert {key: daemon[key] for key in own} == own
    # An empty value is "not set": the webserver keeps the defaults.
    ((_, _, webserver, _),) = pods_of(rendered, "dagsterWebserver")
    assert webserver["nodeSelector"] == EVERY_KEY["nodeSelector"]
    assert webserver["priorityClassName"] == "dagster-default"


def test_pod_annotations_and_labels_merge_with_the_component_winning_per_key(helm, tmp_path):
    values = {
        "podDefaults": {"podAnnotations": {"a": "default", "b": "default"}, "podLabels": {"team": "data", "tier": "x"}},
        "runLauncher": {"pod": {"podAnnotations": {"b": "run", "c": "run"}, "podLabels": {"tier": "batch"}}},
    }
    rendered = render_values(helm, tmp_path, values)
    ((_, metadata, _, _),) = pods_of(rendered, "runLauncher")
    assert {k: metadata["annotations"][k] for k in "abc"} == {"a": "default", "b": "run", "c": "run"}
    assert (metadata["labels"]["team"], metadata["labels"]["tier"]) == ("data", "batch")
    ((_, webserver, _, _),) = pods_of(rendered, "dagsterWebserver")
    assert {k: webserver["annotations"].get(k) for k in "abc"} == {"a": "default", "b": "default", "c": None}
    assert "checksum/config" in webserver["annotations"]


def test_lists_concatenate_the_defaults_first(helm, tmp_path):
    own = {
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"}],
        "env": [{"name": "DAGSTER_GRPC_TIMEOUT_SECONDS", "value": "300"}],
        "envFrom": [{"configMapRef": {"name": "own-env"}}],
        "volumes": [{"name": "own", "emptyDir": {}}],
        "volumeMounts": [{"name": "own", "mountPath": "/own"}],
        "initContainers": [{"name": "own-init", "image": "init:1"}],
        "extraContainers": [{"name": "own-sidecar", "image": "sidecar:1"}],
    }
    rendered = render_values(helm, tmp_path, {"podDefaults": EVERY_KEY, "codeLocation": {"pod": own}})
    ((_, _, spec, container),) = pods_of(rendered, "codeLocation")
    assert spec["tolerations"] == [*NODE_LOSS_TOLERATIONS, *EVERY_KEY["tolerations"], *own["tolerations"]]
    # The chart's own spread over nodes stays first.
    assert [c["topologyKey"] for c in spec["topologySpreadConstraints"]] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "rack",
    ]
    env = names(container["env"])
    assert env.index("HTTPS_PROXY") + 1 == env.index("DAGSTER_GRPC_TIMEOUT_SECONDS")
    assert container["envFrom"][-2:] == [*EVERY_KEY["envFrom"], *own["envFrom"]]
    assert names(spec["volumes"])[-2:] == ["keys", "own"]
    assert [m["name"] for m in container["volumeMounts"]][-2:] == ["keys", "own"]
    assert names(spec["initContainers"]) == ["db-proxy", "own-init", "wait-for-database"]
    assert names(spec["containers"]) == ["code-server", "exporter", "own-sidecar"]


@pytest.mark.parametrize("read_only_runs", [False, True])
def test_user_containers_get_the_restricted_security_context(helm, tmp_path, read_only_runs):
    values = {"podDefaults": EVERY_KEY, "runLauncher": {"readOnlyRootFilesystem": read_only_runs}}
    rendered = render_values(helm, tmp_path, values)
    for block in POD_BLOCKS:
        for where, _, spec, _ in pods_of(rendered, block):
            assert_restricted(where, spec)
            user = [c for c in [*spec["initContainers"], *spec["containers"]] if c["name"] in ("db-proxy", "exporter")]
            for container in user:
                context = container["securityContext"]
                at = f"{where}/{container['name']}"
                # The container's own keys win; the chart fills in the rest.
                expected_user = 2000 if container["name"] == "exporter" else (999 if block == "postgresql" else 10001)
                assert context["runAsUser"] == expected_user, at
                read_only = read_only_runs if block == "runLauncher" else True
                assert context["readOnlyRootFilesystem"] is read_only, at


def test_run_pods_extras_are_in_the_rendered_instance_config(helm, tmp_path):
    rendered = render_values(helm, tmp_path, {"podDefaults": EVERY_KEY})
    launcher = rendered.instance_config()["run_launcher"]["config"]
    run_k8s_config = launcher["run_k8s_config"]
    assert run_k8s_config["pod_template_spec_metadata"] == {
        "annotations": EVERY_KEY["podAnnotations"],
        "labels": EVERY_KEY["podLabels"],
    }
    pod_spec_config = run_k8s_config["pod_spec_config"]
    for key in ("nodeSelector", "affinity", "topologySpreadConstraints", "priorityClassName", "volumes"):
        assert pod_spec_config[key] == EVERY_KEY[key], key
    assert pod_spec_config["tolerations"] == [*NODE_LOSS_TOLERATIONS, *EVERY_KEY["tolerations"]]
    assert names(pod_spec_config["initContainers"]) == ["db-proxy"]
    assert "containers" not in pod_spec_config
    container_config = run_k8s_config["container_config"]
    assert names(container_config["env"]) == ["DAGSTER_PG_PASSWORD", "DBT_PG_PASSWORD", "HTTPS_PROXY"]
    assert container_config["envFrom"] == EVERY_KEY["envFrom"]
    assert container_config["volumeMounts"] == EVERY_KEY["volumeMounts"]
    result = process_config(K8sRunLauncher.config_type(), launcher)
    assert result.success, result.errors


def test_a_jobs_dagster_k8s_config_tag_is_deep_merged_on_top(helm, tmp_path):
    """What K8sContainerContext.create_for_run does with the launcher's run_k8s_config and a run's tags."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig, get_user_defined_k8s_config

    rendered = render_values(helm, tmp_path, {"podDefaults": EVERY_KEY})
    launcher = rendered.instance_config()["run_launcher"]["config"]
    tag = {
        "pod_spec_config": {
            "node_selector": {"disk": "ssd"},
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "priority_class_name": "dagster-critical",
        },
        "container_config": {"env": [{"name": "DBT_THREADS", "value": "8"}]},
        "pod_template_spec_metadata": {"annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}},
    }
    context = K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher["run_k8s_config"]))
    context = context.merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config({"dagster-k8s/config": json.dumps(tag)}))
    )
    template = run_worker_job({**launcher, "run_k8s_config": context.run_k8s_config.to_dict()})["spec"]["template"]
    spec = template["spec"]
    assert spec["nodeSelector"] == {"pool": "dagster", "disk": "ssd"}
    gpu = {"key": "gpu", "operator": "Exists"}
    assert spec["tolerations"] == [*NODE_LOSS_TOLERATIONS, *EVERY_KEY["tolerations"], gpu]
    assert spec["priorityClassName"] == "dagster-critical"
    assert names(spec["containers"][0]["env"])[-2:] == ["HTTPS_PROXY", "DBT_THREADS"]
    assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true"
    assert_restricted("run worker Job with a tag", spec)


def test_every_env_var_the_chart_sets_is_refused_in_extras(helm, tmp_path):
    """A second entry of a name would silently win over the chart's (the password, DAGSTER_HOME...)."""
    rendered = render_values(helm, tmp_path, {})
    chart_env = set(rendered.configmap_data("-env"))
    for _, spec in rendered.pod_specs():
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            chart_env |= set(names(container.get("env")))
    run_pod = run_worker_job(rendered.instance_config()["run_launcher"]["config"])["spec"]["template"]["spec"]
    chart_env |= set(names(run_pod["containers"][0]["env"]))
    assert {"DAGSTER_HOME", "DAGSTER_PG_PASSWORD", "POSTGRES_SUPERUSER_PASSWORD", "DAGSTER_PG_HOST"} <= chart_env
    for name in sorted(chart_env):
        values_file = tmp_path / f"env-{name}.yaml"
        values_file.write_text(yaml.safe_dump({"podDefaults": {"env": [{"name": name, "value": "x"}]}}))
        result = helm_template(helm, [values_file])
        assert result.returncode != 0, f"podDefaults.env {name} was accepted"
        assert f"podDefaults.env[0]: {name} is set by the chart" in result.stderr, result.stderr
