"""Several code locations in one instance (additionalCodeLocations): each a Deployment, Service
and PodDisruptionBudget of its own, in one workspace after codeLocation; settings an entry leaves
out come from codeLocation, whole; its runs get its image and its warehouse database."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from chart_render import CHART_DIR, Rendered, assert_refused, load_values, render_values

LOCATIONS_VALUES = CHART_DIR / "ci" / "code-locations-values.yaml"
DEFAULTS = load_values(None)["codeLocation"]
EXTRA = {entry["name"]: entry for entry in load_values(LOCATIONS_VALUES)["additionalCodeLocations"]}


def deployments_by_location(rendered: Rendered) -> dict[str, dict[str, Any]]:
    """Code server Deployments by the --location-name of their container."""
    found = {}
    for deployment in rendered.of_kind("Deployment"):
        (container, *_) = deployment["spec"]["template"]["spec"]["containers"]
        if container["name"] == "code-server":
            command = container["command"]
            found[command[command.index("--location-name") + 1]] = deployment
    return found


def code_server(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def argument(container: dict[str, Any], flag: str) -> str | None:
    command = container["command"]
    return command[command.index(flag) + 1] if flag in command else None


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {var["name"]: var.get("value") for var in container["env"]}


def test_every_location_is_in_the_workspace_in_order_behind_its_own_service(render):
    rendered = render(LOCATIONS_VALUES)
    workspace = yaml.safe_load(rendered.configmap_data("-workspace")["workspace.yaml"])
    servers = [entry["grpc_server"] for entry in workspace["load_from"]]
    assert [server["location_name"] for server in servers] == [DEFAULTS["name"], *EXTRA]
    services = {service["metadata"]["name"]: service for service in rendered.of_kind("Service")}
    deployments = deployments_by_location(rendered)
    for server in servers:
        service = services[server["host"]]
        pod_labels = deployments[server["location_name"]]["spec"]["template"]["metadata"]["labels"]
        # The Service selects this location's pods of this version, and no other location's.
        assert service["spec"]["selector"].items() <= pod_labels.items(), server
        for other, deployment in deployments.items():
            if other != server["location_name"]:
                other_labels = deployment["spec"]["template"]["metadata"]["labels"]
                assert not service["spec"]["selector"].items() <= other_labels.items(), (server, other)
        assert service["spec"]["ports"][0]["port"] == server["port"]
    assert len({server["host"] for server in servers}) == len(servers)


def test_default_location_keeps_its_object_names(render):
    """An upgrade that adds a location must not rename the default's Deployment (its selector is
    immutable) nor restart it for nothing: its server id does not depend on the others."""
    alone = deployments_by_location(render())[DEFAULTS["name"]]
    beside = deployments_by_location(render(LOCATIONS_VALUES))[DEFAULTS["name"]]
    assert alone["metadata"]["name"] == beside["metadata"]["name"]
    assert alone["spec"]["selector"] == beside["spec"]["selector"]
    label = "dagster-dbt-k8s/code-server-id"
    assert (
        alone["spec"]["template"]["metadata"]["labels"][label]
        == beside["spec"]["template"]["metadata"]["labels"][label]
    )


def test_an_entry_with_only_name_and_image_takes_the_rest_from_code_location(render):
    deployment = deployments_by_location(render(LOCATIONS_VALUES))["finance"]
    container = code_server(deployment)
    image = EXTRA["finance"]["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    assert container["imagePullPolicy"] == DEFAULTS["image"]["pullPolicy"]
    assert argument(container, "-m") == DEFAULTS["module"]
    assert argument(container, "-p") == str(DEFAULTS["port"])
    assert argument(container, "--startup-timeout") == str(DEFAULTS["startupTimeoutSeconds"])
    assert deployment["spec"]["replicas"] == DEFAULTS["replicas"]
    assert container["resources"] == DEFAULTS["resources"]
    # Its runs run its image, in the warehouse's database (no container context).
    assert argument(container, "--container-image") == container["image"]
    assert env_of(container)["DAGSTER_CURRENT_IMAGE"] == container["image"]
    assert argument(container, "--container-context") is None
    assert "DBT_PG_DATABASE" not in env_of(container)


def test_a_key_an_entry_gives_replaces_code_locations_whole(render):
    entry = EXTRA["marketing"]
    deployment = deployments_by_location(render(LOCATIONS_VALUES))["marketing"]
    container = code_server(deployment)
    assert container["imagePullPolicy"] == entry["image"]["pullPolicy"]
    assert argument(container, "-m") == entry["module"]
    assert argument(container, "--startup-timeout") == str(entry["startupTimeoutSeconds"])
    assert deployment["spec"]["replicas"] == entry["replicas"]
    # Not merged with codeLocation's: requests.cpu and limits are the entry's alone.
    assert container["resources"] == entry["resources"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["team"] == "marketing"


def test_pod_extras_of_an_entry_replace_code_locations_and_podDefaults_still_apply(helm, tmp_path):
    values = {
        "podDefaults": {"podLabels": {"cost-center": "data"}},
        "codeLocation": {"pod": {"podLabels": {"owner": "platform"}}},
        "additionalCodeLocations": [
            {"name": "finance", "image": {"tag": "1"}},
            {"name": "sales", "image": {"tag": "1"}, "pod": {"podLabels": {"owner": "sales"}}},
        ],
    }
    deployments = deployments_by_location(render_values(helm, tmp_path, values))
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    assert labels["finance"]["owner"] == "platform"  # no pod block: codeLocation's
    assert labels["sales"]["owner"] == "sales"
    assert {labels[name]["cost-center"] for name in labels} == {"data"}


def test_warehouse_database_reaches_the_code_server_its_runs_and_the_embedded_postgresql(render):
    rendered = render(LOCATIONS_VALUES)
    container = code_server(deployments_by_location(rendered)["marketing"])
    database = EXTRA["marketing"]["warehouseDatabase"]
    assert env_of(container)["DBT_PG_DATABASE"] == database
    assert json.loads(argument(container, "--container-context")) == {
        "k8s": {"env_vars": [f"DBT_PG_DATABASE={database}"]}
    }
    (statefulset,) = rendered.of_kind("StatefulSet")
    postgres_env = env_of(statefulset["spec"]["template"]["spec"]["containers"][0])
    # Created by the embedded server, owned by the warehouse role (database:owner).
    warehouse_role = load_values(LOCATIONS_VALUES)["postgresql"]["warehouseUser"]
    assert f"{database}:{warehouse_role}" in postgres_env["POSTGRES_DATABASES"].split()
    # The default location keeps the warehouse's database (from the env ConfigMap).
    default = code_server(deployments_by_location(rendered)[DEFAULTS["name"]])
    assert "DBT_PG_DATABASE" not in env_of(default)


def test_warehouse_database_on_snowflake_is_the_snowflake_database(helm, tmp_path):
    values = yaml.safe_load((CHART_DIR / "ci" / "snowflake-values.yaml").read_text())
    values["additionalCodeLocations"] = [{"name": "finance", "image": {"tag": "1"}, "warehouseDatabase": "FINANCE"}]
    container = code_server(deployments_by_location(render_values(helm, tmp_path, values))["finance"])
    assert env_of(container)["SNOWFLAKE_DATABASE"] == "FINANCE"
    assert json.loads(argument(container, "--container-context"))["k8s"]["env_vars"] == ["SNOWFLAKE_DATABASE=FINANCE"]


def test_each_location_with_replicas_gets_its_own_disruption_budget(render):
    rendered = render(LOCATIONS_VALUES)
    deployments = deployments_by_location(rendered)
    budgets = {budget["metadata"]["name"]: budget for budget in rendered.of_kind("PodDisruptionBudget")}
    for name, deployment in deployments.items():
        budget = budgets.get(deployment["metadata"]["name"])
        if deployment["spec"]["replicas"] > 1:
            assert budget is not None, name
            assert budget["spec"]["selector"] == deployment["spec"]["selector"], name
        else:
            assert budget is None, name


def test_helm_test_checks_every_location(render):
    rendered = render(LOCATIONS_VALUES)
    (pod,) = rendered.of_kind("Pod")
    tested = json.loads(env_of(pod["spec"]["containers"][0])["CODE_LOCATIONS"])
    workspace = yaml.safe_load(rendered.configmap_data("-workspace")["workspace.yaml"])
    assert tested == [
        {"name": s["location_name"], "host": s["host"], "port": s["port"]}
        for s in (entry["grpc_server"] for entry in workspace["load_from"])
    ]


# (id, additionalCodeLocations, text the error must contain: it names the key)
BAD_LOCATIONS: list[tuple[str, list[dict[str, Any]], str]] = [
    (
        "name-of-the-default-location",
        [{"name": DEFAULTS["name"], "image": {"tag": "1"}}],
        f'additionalCodeLocations[0].name: "{DEFAULTS["name"]}" is already the name of codeLocation',
    ),
    (
        "name-twice",
        [{"name": "finance", "image": {"tag": "1"}}, {"name": "finance", "image": {"tag": "2"}}],
        'additionalCodeLocations[1].name: "finance" is already the name of additionalCodeLocations[0]',
    ),
    (
        "name-not-a-dns-label",
        [{"name": "Finance_Team", "image": {"tag": "1"}}],
        "at '/additionalCodeLocations/0/name'",
    ),
    ("no-image", [{"name": "finance"}], "at '/additionalCodeLocations/0': missing property 'image'"),
    (
        "no-tag",
        [{"name": "finance", "image": {"repository": "finance-dbt"}}],
        "at '/additionalCodeLocations/0/image': missing property 'tag'",
    ),
    (
        "tag-latest",
        [{"name": "finance", "image": {"tag": "latest"}}],
        "additionalCodeLocations[0].image.tag must not be latest",
    ),
    (
        "unknown-key",
        [{"name": "finance", "image": {"tag": "1"}, "dbtProject": "finance"}],
        "at '/additionalCodeLocations/0': additional properties 'dbtProject' not allowed",
    ),
    (
        "bad-warehouse-database",
        [{"name": "finance", "image": {"tag": "1"}, "warehouseDatabase": "finance; drop"}],
        "at '/additionalCodeLocations/0/warehouseDatabase'",
    ),
    (
        "env-the-chart-sets-in-an-entrys-pod",
        [{"name": "finance", "image": {"tag": "1"}, "pod": {"env": [{"name": "DAGSTER_HOME", "value": "/x"}]}}],
        "additionalCodeLocations[0].pod.env[0]: DAGSTER_HOME is set by the chart",
    ),
]


@pytest.mark.parametrize(
    ("locations", "message"), [case[1:] for case in BAD_LOCATIONS], ids=[c[0] for c in BAD_LOCATIONS]
)
def test_bad_code_locations_are_refused_naming_the_key(helm, tmp_path, locations, message):
    assert_refused(helm, tmp_path, {"additionalCodeLocations": locations}, message)
