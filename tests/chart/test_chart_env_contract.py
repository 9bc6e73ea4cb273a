"""The env contract the project's code reads, on the code location, the daemon, the webserver and
the run pods: non-secret values from the env ConfigMap, secrets only from Secrets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chart_render import SCENARIO_IDS, SCENARIOS, Rendered, load_values, run_worker_job

SECRET_NAME_PARTS = ("PASSWORD", "PRIVATE_KEY", "PASSPHRASE", "SECRET", "TOKEN")


def resolve_env(
    rendered: Rendered, container: dict[str, Any]
) -> tuple[dict[str, str], dict[str, tuple[str, str]], list[str]]:
    """(plain values, name -> (secret, key) of secretKeyRefs, whole Secrets given with envFrom)."""
    plain: dict[str, str] = {}
    secret_refs: dict[str, tuple[str, str]] = {}
    secret_sources: list[str] = []
    configmaps = {cm["metadata"]["name"]: cm["data"] for cm in rendered.of_kind("ConfigMap")}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            # A ConfigMap the chart does not render (podDefaults.envFrom) holds nothing the contract reads.
            plain.update(configmaps.get(source["configMapRef"]["name"], {}))
        else:
            secret_sources.append(source["secretRef"]["name"])
    for var in container.get("env") or []:
        if "value" in var:
            plain[var["name"]] = var["value"]
            assert not any(part in var["name"] for part in SECRET_NAME_PARTS), f"{var['name']} has a plain value"
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            secret_refs[var["name"]] = (ref["name"], ref["key"])
    return plain, secret_refs, secret_sources


def containers_under_test(rendered: Rendered) -> dict[str, dict[str, Any]]:
    found = {
        suffix: rendered.one("Deployment", f"-{suffix}")["spec"]["template"]["spec"]["containers"][0]
        for suffix in ("code-location", "daemon", "webserver")
    }
    found["run-worker"] = run_worker_job(rendered.instance_config()["run_launcher"]["config"])["spec"]["template"][
        "spec"
    ]["containers"][0]
    return found


def expected_contract(
    values: dict[str, Any], rendered: Rendered
) -> tuple[dict[str, str], dict[str, tuple[str, str]], list[str]]:
    pg = values["postgresql"]
    external = values["externalPostgresql"]
    if pg["enabled"]:
        dagster_db = {
            "DAGSTER_PG_HOST": rendered.one("Service", "-postgresql")["metadata"]["name"],
            "DAGSTER_PG_PORT": str(pg["port"]),
            "DAGSTER_PG_USER": pg["user"],
            "DAGSTER_PG_DB": pg["database"],
        }
        dagster_secret = (
            pg["existingSecret"] or rendered.one("Secret", "-postgresql")["metadata"]["name"],
            pg["passwordKey"],
        )
    else:
        dagster_db = {
            "DAGSTER_PG_HOST": external["host"],
            "DAGSTER_PG_PORT": str(external["port"]),
            "DAGSTER_PG_USER": external["user"],
            "DAGSTER_PG_DB": external["database"],
        }
        dagster_secret = (external["existingSecret"], external["passwordKey"])
    plain = {
        **dagster_db,
        "DO_NOT_TRACK": "1",
        "DBT_TARGET": values["warehouse"]["target"],
    }
    secrets = {"DAGSTER_PG_PASSWORD": dagster_secret}
    sources: list[str] = []
    warehouse = values["warehouse"]
    if warehouse["target"] == "postgres":
        wpg = warehouse["postgres"]
        on_embedded = pg["enabled"] and not wpg["host"]
        plain |= {
            "DBT_PG_HOST": wpg["host"] or dagster_db["DAGSTER_PG_HOST"],
            "DBT_PG_PORT": str(wpg["port"]) if wpg["host"] else dagster_db["DAGSTER_PG_PORT"],
            # The embedded server's warehouse has a role of its own; any other's defaults to Dagster's.
            "DBT_PG_USER": pg["warehouseUser"] if on_embedded else (wpg["user"] or dagster_db["DAGSTER_PG_USER"]),
            "DBT_PG_DATABASE": wpg["database"],
        }
        # libpq parameters: Dagster's external server's while dbt uses that server, then the warehouse's.
        params = {} if wpg["host"] or pg["enabled"] else dict(external["params"])
        params |= wpg["params"]
        plain |= {f"DBT_PG_{name.upper()}": str(value) for name, value in params.items()}
        if on_embedded:
            secrets["DBT_PG_PASSWORD"] = (dagster_secret[0], pg["warehousePasswordKey"])
        else:
            secrets["DBT_PG_PASSWORD"] = (
                (wpg["existingSecret"], wpg["passwordKey"]) if wpg["existingSecret"] else dagster_secret
            )
    else:
        sf = warehouse["snowflake"]
        plain |= {
            "SNOWFLAKE_ACCOUNT": sf["account"],
            "SNOWFLAKE_USER": sf["user"],
            "SNOWFLAKE_ROLE": sf["role"],
            "SNOWFLAKE_WAREHOUSE": sf["warehouse"],
            "SNOWFLAKE_DATABASE": sf["database"],
        }
        sources.append(sf["existingSecret"])
    return plain, secrets, sources


@pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
def test_env_contract_on_every_dagster_container_and_run_pods(render, values_file):
    rendered = render(values_file)
    plain_expected, secrets_expected, sources_expected = expected_contract(load_values(values_file), rendered)
    for where, container in containers_under_test(rendered).items():
        plain, secrets, sources = resolve_env(rendered, container)
        for name, value in plain_expected.items():
            assert plain.get(name) == value, f"{where}: {name}={plain.get(name)!r}, want {value!r}"
        for name, ref in secrets_expected.items():
            assert secrets.get(name) == ref, f"{where}: {name} from {secrets.get(name)}, want secretKeyRef {ref}"
            assert name not in plain, f"{where}: {name} has a plain value"
        assert sources == sources_expected, f"{where}: envFrom Secrets {sources}"
        if values_file is None or "snowflake" not in values_file.name:
            assert not any(name.startswith("SNOWFLAKE_") for name in plain), where


def test_snowflake_credentials_only_from_the_named_secret(render):
    from chart_render import CHART_DIR

    rendered = render(CHART_DIR / "ci" / "snowflake-values.yaml")
    env = rendered.configmap_data("-env")
    assert env["DBT_TARGET"] == "snowflake"
    assert not any(key.startswith("DBT_PG_") for key in env)
    launcher = rendered.instance_config()["run_launcher"]["config"]
    assert launcher["env_secrets"] == ["snowflake-credentials"]
    run_pod = run_worker_job(launcher)["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "snowflake-credentials"}} in run_pod["envFrom"]
    assert not any(var["name"].startswith("DBT_PG_") for var in run_pod["env"])


def test_helm_test_pod_checks_graphql_and_grpc_health(render):
    rendered = render()
    (pod,) = rendered.of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = "\n".join(pod["spec"]["containers"][0]["command"])
    assert "/graphql" in script and "/server_info" in script and "grpc-health-check" in script
    env = {v["name"]: v["value"] for v in pod["spec"]["containers"][0]["env"]}
    assert env["WEBSERVER_URL"] == f"http://{rendered.one('Service', '-webserver')['metadata']['name']}:80"
    service = rendered.component_service("code-location")
    assert json.loads(env["CODE_LOCATIONS"]) == [
        {
            "name": load_values(None)["codeLocation"]["name"],
            "host": service["metadata"]["name"],
            "port": service["spec"]["ports"][0]["port"],
        }
    ]
    assert env["DO_NOT_TRACK"] == "1"


def test_helm_test_graphql_query_is_valid_for_this_dagster(render):
    import ast

    import graphql
    from dagster_graphql.schema import create_schema

    script = render().of_kind("Pod")[0]["spec"]["containers"][0]["command"][2]
    query = next(
        node.value.value
        for node in ast.walk(ast.parse(script))
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "query"
    )
    errors = graphql.validate(create_schema().graphql_schema, graphql.parse(query))
    assert not errors, errors
