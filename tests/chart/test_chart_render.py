"""helm lint and helm template over the default values and every ci scenario; object-level rules."""

from __future__ import annotations

import subprocess
import tomllib

import pytest
import yaml
from chart_render import CHART_DIR, RUN_LAUNCHER_CALLS, SCENARIO_IDS, SCENARIOS, load_values

from dagster_code.config import DEFAULT_SNAPSHOT_POOL

REQUIRED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)
SELECTOR_LABELS = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
CODE_SERVER_ID_LABEL = "dagster-dbt-k8s/code-server-id"
DAGSTER_WORKLOADS = ("-webserver", "-daemon", "-code-location")


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_helm_lint_passes(helm, values_file):
    args = [helm, "lint", str(CHART_DIR), "--strict"]
    if values_file:
        args += ["--values", str(values_file)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_every_object_has_the_app_kubernetes_io_labels(render, values_file):
    rendered = render(values_file)
    assert rendered.docs
    for doc in rendered.docs:
        labels = doc["metadata"].get("labels") or {}
        missing = [label for label in REQUIRED_LABELS if not labels.get(label)]
        assert not missing, f"{doc['kind']}/{doc['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    for where, _ in rendered.pod_specs():
        kind, name = where.split("/")
        if kind == "Pod":
            continue
        template_labels = rendered.one(kind, name)["spec"]["template"]["metadata"]["labels"]
        missing = [label for label in REQUIRED_LABELS if not template_labels.get(label)]
        assert not missing, f"pod template of {where} lacks {missing}"


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_selectors_use_name_instance_component_only(render, values_file):
    """Workload selectors never change on upgrade; a Service adds only the code server id (one
    Service per version of the code, see test_each_version_of_the_code_has_its_own_service)."""
    rendered = render(values_file)
    for doc in rendered.docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            selector = doc["spec"]["selector"]["matchLabels"]
            template_labels = doc["spec"]["template"]["metadata"]["labels"]
        elif doc["kind"] == "Service":
            selector = dict(doc["spec"]["selector"])
            selector.pop(CODE_SERVER_ID_LABEL, None)
            template_labels = None
        else:
            continue
        assert set(selector) == SELECTOR_LABELS, f"{doc['kind']}/{doc['metadata']['name']}: {selector}"
        if template_labels is not None:
            assert selector.items() <= template_labels.items()
    # Every Service selects the pods of exactly one workload.
    workloads = [d for d in rendered.docs if d["kind"] in ("Deployment", "StatefulSet")]
    for service in rendered.of_kind("Service"):
        selected = [
            w["metadata"]["name"]
            for w in workloads
            if service["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {selected}"


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_images_are_pinned_and_never_pulled_always(render, values_file):
    rendered = render(values_file)
    images = []
    for where, spec in rendered.pod_specs():
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            image = container["image"]
            images.append(image)
            repository, _, tag = image.rpartition(":")
            assert repository and tag and "/" not in tag, f"{where}: image {image} has no tag"
            assert tag != "latest", f"{where}: image {image} uses latest"
            assert container.get("imagePullPolicy") in ("IfNotPresent", "Never"), f"{where}/{container['name']}"
    launcher = rendered.instance_config()["run_launcher"]["config"]
    assert not launcher["job_image"].endswith(":latest")
    assert launcher["image_pull_policy"] == "IfNotPresent"
    assert images


def test_dg_project_names_the_charts_code_location():
    """`dg` commands (pyproject's [tool.dg]) and the deployment must call the location the same."""
    pyproject = tomllib.loads((CHART_DIR.parents[1] / "pyproject.toml").read_text())
    assert pyproject["tool"]["dg"]["project"]["code_location_name"] == load_values(None)["codeLocation"]["name"]


def test_platform_default_snapshot_pool_is_limited_to_one():
    """A project that names no pool gets its snapshots in dagster_code's default pool: the chart
    must limit that pool, or its snapshot runs could merge into the same tables at once."""
    assert load_values(None)["concurrency"]["pools"]["limits"][DEFAULT_SNAPSHOT_POOL] == 1


def test_default_images_are_the_ones_the_build_makes():
    """versions.env names the images `make image` builds and `make up` loads; the chart's defaults
    must install exactly those (read through bash, so its expansions count)."""
    built = subprocess.run(
        ["bash", "-c", 'source versions.env && echo "${PROJECT_IMAGE} ${POSTGRES_IMAGE}"'],
        cwd=CHART_DIR.parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    values = load_values(None)
    defaults = [
        f"{image['repository']}:{image['tag']}"
        for image in (values["codeLocation"]["image"], values["postgresql"]["image"])
    ]
    assert defaults == built


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_dagster_pods_carry_a_config_checksum(render, values_file):
    rendered = render(values_file)
    for suffix in DAGSTER_WORKLOADS:
        annotations = rendered.one("Deployment", suffix)["spec"]["template"]["metadata"].get("annotations") or {}
        assert len(annotations.get("checksum/config", "")) == 64, f"Deployment *{suffix}: {annotations}"


@pytest.mark.parametrize(
    "change",
    [
        {"dagsterDaemon.runMonitoring.pollIntervalSeconds": "7"},
        {"concurrency.runs.maxConcurrentRuns": "3"},
        {"codeLocation.name": "another-location"},
        {"warehouse.postgres.database": "elsewhere"},
    ],
    ids=["instance", "instance-concurrency", "workspace", "env"],
)
def test_config_checksum_changes_with_the_configmaps(render, change):
    before = render()
    after = render(set_values=change)
    assert render() is before  # cached: the same arguments render once
    for suffix in DAGSTER_WORKLOADS:
        old = before.one("Deployment", suffix)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        new = after.one("Deployment", suffix)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        assert old != new, f"Deployment *{suffix} would not restart after {change}"


def test_config_checksum_is_stable_across_renders(helm):
    from chart_render import helm_template

    first, second = helm_template(helm), helm_template(helm)
    assert first.returncode == second.returncode == 0
    checksums = [[line for line in r.stdout.splitlines() if "checksum/config" in line] for r in (first, second)]
    assert checksums[0] and checksums[0] == checksums[1]


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_no_secret_value_appears_outside_secrets(render, values_file):
    known = "Kn0wn-Passw0rd-For-The-Test"
    embedded = load_values(values_file)["postgresql"]["enabled"]
    for rendered, password in (
        (render(values_file), None),
        (render(values_file, {"postgresql.password": known}), known),
    ):
        secrets = [value for value in rendered.secret_values() if value]
        if embedded:
            assert secrets, "the embedded PostgreSQL has no password Secret"
            if password:
                assert password in secrets
        for doc in rendered.docs:
            if doc["kind"] == "Secret":
                continue
            text = repr(doc)
            for value in [*secrets, known]:
                assert value not in text, f"a Secret value appears in {doc['kind']}/{doc['metadata']['name']}"
        for configmap in rendered.of_kind("ConfigMap"):
            for key in configmap["data"]:
                assert "PASSWORD" not in key and "PRIVATE_KEY" not in key, f"{configmap['metadata']['name']}: {key}"


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_rbac_is_namespaced_and_minimal(render, values_file):
    rendered = render(values_file)
    assert not rendered.of_kind("ClusterRole")
    assert not rendered.of_kind("ClusterRoleBinding")
    granted = set()
    for rule in [rule for role in rendered.of_kind("Role") for rule in role["rules"]]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        granted |= {
            (group, resource, verb)
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
    assert granted == RUN_LAUNCHER_CALLS
    # The union of the daemon's and the webserver's (tests/chart/test_chart_service_accounts.py
    # says whose is what); each binding ties a Role of the chart to an account in this namespace.
    roles = {role["metadata"]["name"] for role in rendered.of_kind("Role")}
    accounts = {account["metadata"]["name"] for account in rendered.of_kind("ServiceAccount")}
    for binding in rendered.of_kind("RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] in roles, binding
        for subject in binding["subjects"]:
            assert subject["namespace"] == "dagster-chart-test" and subject["name"] in accounts, binding


def _as_kubernetes_model(doc):
    import kubernetes
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

    version = doc["apiVersion"].split("/")[-1]
    model = getattr(kubernetes.client, f"{version.capitalize()}{doc['kind']}")
    return k8s_model_from_dict(model, k8s_snake_case_dict(model, doc))


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_manifests_are_valid_kubernetes_objects(render, values_file):
    """Every field exists in the Kubernetes API (the Python client's models, strictly): a
    misspelt probe or security field fails here instead of being dropped by the API server."""
    for doc in render(values_file).docs:
        _as_kubernetes_model(doc)


def test_kubernetes_model_check_catches_a_misspelt_nested_field(render):
    import copy

    deployment = copy.deepcopy(render().one("Deployment", "-daemon"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRot"] = True
    with pytest.raises(Exception, match="runAsNonRot|run_as_non_rot"):
        _as_kubernetes_model(deployment)


def test_code_location_health_is_dagsters_grpc_health_check(render):
    container = render().one("Deployment", "-code-location")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:8] == ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "3030", "-m"]
    # What `dagster api grpc-health-check` asks: grpc.health.v1 Check for the service "DagsterApi",
    # natively (no Python started by an exec probe).
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 3030, "service": "DagsterApi"}, probe
    assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 180


def fixed_server_id(rendered) -> str:
    command = rendered.one("Deployment", "-code-location")["spec"]["template"]["spec"]["containers"][0]["command"]
    return command[command.index("--fixed-server-id") + 1]


def test_code_location_survives_a_node_drain_by_default(render):
    """Two code servers on different nodes, evicted one at a time, new before old on a rollout,
    serving during their grace period: the daemon can always reach one to create a retry."""
    rendered = render()
    deployment = rendered.one("Deployment", "-code-location")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = spec["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert pod.get("terminationGracePeriodSeconds", 30) > 5
    budget = rendered.one("PodDisruptionBudget", "-code-location")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": spec["selector"]["matchLabels"]}}
    assert not render(set_values={"codeLocation.replicas": "1"}).of_kind("PodDisruptionBudget")


def test_code_servers_share_one_id_that_changes_with_the_code(render):
    """Every replica answers GetServerId alike, or the webserver and the daemon would reload the
    location on every request the Service sends elsewhere; a new image or module must still
    change it, or they would keep serving the old definitions' snapshot."""
    default = fixed_server_id(render())
    assert len(default) == 32
    assert fixed_server_id(render(set_values={"codeLocation.replicas": "3"})) == default
    assert fixed_server_id(render(set_values={"codeLocation.image.tag": "0.1.1"})) != default
    assert fixed_server_id(render(set_values={"codeLocation.module": "other.definitions"})) != default


def pod_template_checksum(rendered, suffix: str) -> str:
    return rendered.one("Deployment", suffix)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_each_version_of_the_code_has_its_own_service(render):
    """The webserver and the daemon load the location through a Service that selects only the
    current version's code servers: after an upgrade none can answer them with an old server still
    draining, whose definitions and image they would otherwise keep (the watch thread takes the id
    it first reads as the loaded one's). A new version renames the Service, so the workspace changes
    and both restart onto it."""
    rendered = render()
    server_id = fixed_server_id(rendered)
    service = rendered.component_service("code-location")
    pod_labels = rendered.one("Deployment", "-code-location")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"][CODE_SERVER_ID_LABEL] == server_id
    assert service["spec"]["selector"].items() <= pod_labels.items()
    workspace = yaml.safe_load(rendered.configmap_data("-workspace")["workspace.yaml"])
    host = workspace["load_from"][0]["grpc_server"]["host"]
    assert host == service["metadata"]["name"]
    assert server_id[:10] in host

    upgraded = render(set_values={"codeLocation.image.tag": "0.1.1"})
    assert upgraded.component_service("code-location")["metadata"]["name"] != service["metadata"]["name"]
    for suffix in ("-webserver", "-daemon"):
        assert pod_template_checksum(upgraded, suffix) != pod_template_checksum(rendered, suffix), suffix
    # What does not change the definitions keeps the Service (and restarts nothing).
    scaled = render(set_values={"codeLocation.replicas": "3"})
    assert scaled.component_service("code-location")["metadata"]["name"] == service["metadata"]["name"]


def test_code_location_service_name_fits_a_dns_label(render):
    long_name = render(set_values={"fullnameOverride": "a" * 63})
    name = long_name.component_service("code-location")["metadata"]["name"]
    assert len(name) <= 63 and name.startswith("a" * 40 + "-code-"), name


def test_changing_a_pool_limit_restarts_nothing(render):
    """Pool limits live in the database (set by the pools hook), not in dagster.yaml: a helm
    upgrade that lowers one leaves every Deployment's pod template unchanged."""
    before = render()
    after = render(set_values={"concurrency.pools.limits.dbt-snapshots": "0"})
    for suffix in DAGSTER_WORKLOADS:
        assert (
            before.one("Deployment", suffix)["spec"]["template"] == after.one("Deployment", suffix)["spec"]["template"]
        )
    assert before.one("Job", "-pools") != after.one("Job", "-pools")


def test_chart_refuses_kubernetes_that_would_drop_pod_replacement_policy(helm):
    """Before 1.29 the API server drops the run Jobs' podReplacementPolicy silently, and evicted
    runs lose their UNEXPECTED_TERMINATION reason (chart README, design notes)."""
    from chart_render import helm_template

    refused = helm_template(helm, extra_args=["--kube-version", "1.28.15"])
    assert refused.returncode != 0 and "kubeVersion" in refused.stderr, refused.stderr
    assert helm_template(helm, extra_args=["--kube-version", "1.29.0"]).returncode == 0
