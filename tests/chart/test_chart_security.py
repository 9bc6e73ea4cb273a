"""Every pod, the run pods the launcher creates included, passes the Pod Security Standard "restricted"."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chart_render import CHART_DIR, SCENARIO_IDS, SCENARIOS, run_worker_job

# The volume types the "restricted" profile allows (Pod Security Standards, "Volume Types").
ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def assert_restricted(where: str, spec: dict[str, Any]) -> None:
    """The "restricted" profile, asserted field by field on the pod and on each container."""
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(forbidden), f"{where}: {forbidden}"
    pod = spec.get("securityContext") or {}
    assert pod.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot"
    assert isinstance(pod.get("runAsUser"), int) and pod["runAsUser"] > 0, f"{where}: pod runAsUser"
    assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{where}: pod seccompProfile"
    for volume in spec.get("volumes") or []:
        types = set(volume) - {"name"}
        assert types <= ALLOWED_VOLUME_TYPES, f"{where}: volume {volume}"
    containers = [*(spec.get("initContainers") or []), *spec["containers"]]
    assert containers
    for container in containers:
        at = f"{where}/{container['name']}"
        context = container.get("securityContext") or {}
        assert context.get("runAsNonRoot") is True, f"{at}: runAsNonRoot"
        assert isinstance(context.get("runAsUser"), int) and context["runAsUser"] > 0, f"{at}: runAsUser"
        assert context.get("allowPrivilegeEscalation") is False, f"{at}: allowPrivilegeEscalation"
        assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{at}: capabilities.drop"
        assert not context.get("capabilities", {}).get("add"), f"{at}: capabilities.add"
        assert context.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{at}: seccompProfile"
        assert not context.get("privileged"), f"{at}: privileged"
        assert "readOnlyRootFilesystem" in context, f"{at}: readOnlyRootFilesystem unset"
        for port in container.get("ports") or []:
            assert "hostPort" not in port, f"{at}: hostPort"


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_every_pod_is_restricted(render, values_file):
    specs = render(values_file).pod_specs()
    kinds = {where.split("/")[0] for where, _ in specs}
    assert {"Deployment", "Job", "Pod"} <= kinds
    for where, spec in specs:
        assert_restricted(where, spec)


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_chart_pods_have_a_read_only_root_and_a_writable_tmp(render, values_file):
    for where, spec in render(values_file).pod_specs():
        tmp_volumes = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            at = f"{where}/{container['name']}"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, at
            tmp = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in tmp_volumes, f"{at}: no emptyDir on /tmp"


@pytest.mark.parametrize("read_only", [False, True])
def test_run_pods_read_only_root_follows_its_own_value(render, read_only):
    launcher = render(set_values={"runLauncher.readOnlyRootFilesystem": str(read_only).lower()}).instance_config()[
        "run_launcher"
    ]["config"]
    container = run_worker_job(launcher)["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is read_only


def test_postgresql_is_restricted_with_a_read_only_root(render):
    spec = render().one("StatefulSet", "-postgresql")["spec"]["template"]["spec"]
    assert_restricted("StatefulSet/postgresql", spec)
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsUser"] == 999
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"} <= mounts
    assert spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_run_pods_built_by_dagster_k8s_are_restricted(render, values_file):
    launcher = render(values_file).instance_config()["run_launcher"]["config"]
    job = run_worker_job(launcher)
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    pod = job["spec"]["template"]["spec"]
    assert_restricted("run worker Job", pod)
    (container,) = pod["containers"]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["serviceAccountName"] == launcher["service_account_name"]
    # NOTES.txt lists run Jobs and pods by these labels.
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["app.kubernetes.io/instance"] == "chart-test"
        assert labels["app.kubernetes.io/component"] == "run-worker"


def test_the_schema_allows_only_restricted_volume_types_and_container_settings():
    """podDefaults and the pod blocks are typed by the schema; what it lets through stays "restricted"."""
    definitions = json.loads((CHART_DIR / "values.schema.json").read_text())["definitions"]
    volume_types = set(definitions["volumes"]["items"]["properties"]) - {"name"}
    assert volume_types <= ALLOWED_VOLUME_TYPES
    assert definitions["volumes"]["items"]["additionalProperties"] is False
    context = definitions["containerSecurityContext"]
    assert context["additionalProperties"] is False
    assert context["properties"]["privileged"] == {"const": False}
    assert context["properties"]["allowPrivilegeEscalation"] == {"const": False}
    assert context["properties"]["runAsNonRoot"] == {"const": True}
    assert context["properties"]["runAsUser"]["minimum"] >= 1
    assert context["properties"]["capabilities"]["properties"]["add"]["items"] == {"enum": ["NET_BIND_SERVICE"]}
