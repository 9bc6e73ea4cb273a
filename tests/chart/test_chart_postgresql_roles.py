"""The embedded PostgreSQL's roles and passwords: Dagster's storage and the warehouse each log in
as a role of their own (never the superuser), the Secret holds the three passwords, and the pods
that read them restart when one changes (the server applies them at each start)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import yaml
from chart_render import FIXED_PASSWORDS, Rendered, assert_refused, helm_template, load_values

PG = load_values(None)["postgresql"]
DAGSTER_WORKLOADS = ("-webserver", "-daemon", "-code-location")
PASSWORD_NAMES = ("password", "warehousePassword", "superuserPassword")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in container.get("env") or []}


def postgresql_container(rendered: Rendered) -> dict[str, Any]:
    (statefulset,) = rendered.of_kind("StatefulSet")
    return statefulset["spec"]["template"]["spec"]["containers"][0]


def pod_annotations(rendered: Rendered, kind: str, suffix: str) -> dict[str, str]:
    return rendered.one(kind, suffix)["spec"]["template"]["metadata"].get("annotations") or {}


def secret_ref(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


def test_secret_holds_the_three_passwords_and_is_kept(render):
    secret = render().one("Secret", "-postgresql")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert decoded == {PG[f"{name}Key"]: FIXED_PASSWORDS[f"postgresql.{name}"] for name in PASSWORD_NAMES}


def test_generated_passwords_differ_per_key_and_per_render(helm):
    """Without passwords in values, each is generated (32 characters, three different ones).
    `helm template` cannot look up the kept Secret, so each render generates new ones: the
    documented GitOps path is postgresql.existingSecret."""
    generated = []
    for _ in range(2):
        result = helm_template(helm, generated_passwords=True)
        assert result.returncode == 0, result.stderr
        (secret,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Secret"]
        passwords = {base64.b64decode(v).decode() for v in secret["data"].values()}
        assert len(passwords) == 3 and all(len(p) == 32 for p in passwords)
        generated.append(passwords)
    assert generated[0].isdisjoint(generated[1])


def test_dagster_and_dbt_log_in_as_separate_roles_never_the_superuser(render):
    rendered = render()
    name = rendered.one("Secret", "-postgresql")["metadata"]["name"]
    env = rendered.configmap_data("-env")
    assert env["DAGSTER_PG_USER"] == PG["user"]
    assert env["DBT_PG_USER"] == PG["warehouseUser"]
    assert len({PG["user"], PG["warehouseUser"], PG["superuser"]}) == 3
    for suffix in DAGSTER_WORKLOADS:
        container = rendered.one("Deployment", suffix)["spec"]["template"]["spec"]["containers"][0]
        container_env = env_of(container)
        assert container_env["DAGSTER_PG_PASSWORD"] == secret_ref(name, PG["passwordKey"]), suffix
        assert container_env["DBT_PG_PASSWORD"] == secret_ref(name, PG["warehousePasswordKey"]), suffix
    # No pod but the server's reads the superuser's password.
    for where, spec in rendered.pod_specs():
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            keys = {
                var["valueFrom"]["secretKeyRef"]["key"]
                for var in container.get("env") or []
                if "secretKeyRef" in (var.get("valueFrom") or {})
            }
            if container["name"] != "postgresql":
                assert PG["superuserPasswordKey"] not in keys, f"{where}/{container['name']}"


def test_server_creates_each_role_and_database_with_its_owner(render):
    rendered = render()
    name = rendered.one("Secret", "-postgresql")["metadata"]["name"]
    env = env_of(postgresql_container(rendered))
    assert env["POSTGRES_SUPERUSER"] == PG["superuser"]
    assert env["POSTGRES_SUPERUSER_PASSWORD"] == secret_ref(name, PG["superuserPasswordKey"])
    assert env["POSTGRES_ROLES"].split() == [
        f"{PG['user']}:POSTGRES_DAGSTER_PASSWORD",
        f"{PG['warehouseUser']}:POSTGRES_WAREHOUSE_PASSWORD",
    ]
    assert env["POSTGRES_DAGSTER_PASSWORD"] == secret_ref(name, PG["passwordKey"])
    assert env["POSTGRES_WAREHOUSE_PASSWORD"] == secret_ref(name, PG["warehousePasswordKey"])
    warehouse = load_values(None)["warehouse"]["postgres"]["database"]
    assert env["POSTGRES_DATABASES"].split() == [f"{PG['database']}:{PG['user']}", f"{warehouse}:{PG['warehouseUser']}"]


def test_a_warehouse_elsewhere_gets_no_role_on_the_embedded_server(render):
    rendered = render(
        set_values={"warehouse.postgres.host": "warehouse.example", "warehouse.postgres.existingSecret": "wh"}
    )
    env = env_of(postgresql_container(rendered))
    assert env["POSTGRES_ROLES"] == f"{PG['user']}:POSTGRES_DAGSTER_PASSWORD"
    assert env["POSTGRES_DATABASES"] == f"{PG['database']}:{PG['user']}"
    assert "POSTGRES_WAREHOUSE_PASSWORD" not in env


@pytest.mark.parametrize("name", PASSWORD_NAMES)
def test_a_changed_password_restarts_the_server_and_every_dagster_pod(render, name):
    before, after = render(), render(set_values={f"postgresql.{name}": "changed-password"})
    for kind, suffix, annotation in [
        ("StatefulSet", "-postgresql", "checksum/passwords"),
        *(("Deployment", suffix, "checksum/config") for suffix in DAGSTER_WORKLOADS),
    ]:
        old = pod_annotations(before, kind, suffix)[annotation]
        assert old != pod_annotations(after, kind, suffix)[annotation], f"{kind} *{suffix} would not restart"


def test_checksum_is_over_the_rendered_passwords(render):
    """The annotation and the Secret come from one computation (a generated password included)."""
    rendered = render()
    passwords = {PG[f"{name}Key"]: FIXED_PASSWORDS[f"postgresql.{name}"] for name in PASSWORD_NAMES}
    expected = hashlib.sha256(json.dumps(passwords, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert pod_annotations(rendered, "StatefulSet", "-postgresql")["checksum/passwords"] == expected


def test_existing_secret_is_read_with_the_named_keys_and_no_secret_is_rendered(render):
    keys = {"passwordKey": "dagster", "warehousePasswordKey": "dbt", "superuserPasswordKey": "admin"}
    rendered = render(
        set_values={"postgresql.existingSecret": "db-passwords", **{f"postgresql.{k}": v for k, v in keys.items()}}
    )
    assert rendered.of_kind("Secret") == []
    env = env_of(postgresql_container(rendered))
    assert env["POSTGRES_SUPERUSER_PASSWORD"] == secret_ref("db-passwords", "admin")
    assert env["POSTGRES_DAGSTER_PASSWORD"] == secret_ref("db-passwords", "dagster")
    assert env["POSTGRES_WAREHOUSE_PASSWORD"] == secret_ref("db-passwords", "dbt")
    webserver = env_of(rendered.one("Deployment", "-webserver")["spec"]["template"]["spec"]["containers"][0])
    assert webserver["DAGSTER_PG_PASSWORD"] == secret_ref("db-passwords", "dagster")
    assert webserver["DBT_PG_PASSWORD"] == secret_ref("db-passwords", "dbt")
    # The chart cannot see that Secret change: no checksum over it (values README says to restart).
    assert "checksum/passwords" not in pod_annotations(rendered, "StatefulSet", "-postgresql")


def test_existing_secret_renders_the_same_twice(helm):
    """The GitOps path: with existingSecret nothing is generated, so two renders are identical."""
    values = {"postgresql.existingSecret": "db-passwords"}
    first, second = (helm_template(helm, set_values=values, generated_passwords=True) for _ in range(2))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"postgresql": {"user": "postgres"}}, "postgresql.user and postgresql.superuser are both postgres"),
        ({"postgresql": {"warehouseUser": "dagster"}}, "postgresql.warehouseUser dagster is also postgresql.user"),
        ({"warehouse": {"postgres": {"user": "someone"}}}, "with the embedded PostgreSQL the warehouse role is"),
        (
            {"warehouse": {"postgres": {"existingSecret": "wh"}}},
            "the warehouse role's password is in postgresql.existingSecret",
        ),
        ({"warehouse": {"postgres": {"database": "dagster"}}}, "is postgresql.database, Dagster's storage"),
        ({"postgresql": {"warehouseUser": "Not A Role"}}, "/postgresql/warehouseUser"),
    ],
    ids=["dagster-is-superuser", "one-role-twice", "warehouse-user", "warehouse-secret", "shared-db", "bad-name"],
)
def test_roles_that_would_mix_jobs_are_refused(helm, tmp_path, values, expected):
    assert_refused(helm, tmp_path, values, expected)


def test_the_password_checksum_annotation_is_refused_in_extras(helm, tmp_path):
    assert_refused(
        helm,
        tmp_path,
        {"postgresql": {"pod": {"podAnnotations": {"checksum/passwords": "x"}}}},
        "postgresql.pod.podAnnotations.checksum/passwords is set by the chart",
    )
