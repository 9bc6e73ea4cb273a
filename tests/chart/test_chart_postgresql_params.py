"""libpq connection parameters of an external PostgreSQL: to Dagster's storage in dagster.yaml and
to dbt as DBT_PG_<NAME> env vars, with the warehouse's own winning per name."""

from __future__ import annotations

import pytest
from chart_render import CHART_DIR

EXTERNAL = {
    "postgresql.enabled": "false",
    "externalPostgresql.host": "db.example.internal",
    "externalPostgresql.existingSecret": "dagster-db",
    "externalPostgresql.params.sslmode": "require",
    "externalPostgresql.params.connect_timeout": "10",
}


DEAD_CLIENT_SETTINGS = {
    "tcp_keepalives_idle": "60",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "6",
    "tcp_user_timeout": "120000",
    "client_connection_check_interval": "10000",
}


def dbt_params(env: dict[str, str]) -> dict[str, str]:
    """The DBT_PG_* env vars that are not the connection's host, port, user or database."""
    contract = {"DBT_PG_HOST", "DBT_PG_PORT", "DBT_PG_USER", "DBT_PG_DATABASE"}
    return {name: value for name, value in env.items() if name.startswith("DBT_PG_") and name not in contract}


def test_external_params_reach_dagsters_storage_and_dbt(render):
    from urllib.parse import parse_qs, urlsplit

    from dagster_postgres.utils import get_conn_string

    rendered = render(set_values=EXTERNAL)
    postgres_db = rendered.instance_config()["storage"]["custom"]["config"]["postgres_db"]
    assert postgres_db["params"] == {"sslmode": "require", "connect_timeout": 10}
    url = get_conn_string("u", "p", "h", "d", params=postgres_db["params"])
    assert parse_qs(urlsplit(url).query) == {"sslmode": ["require"], "connect_timeout": ["10"]}
    assert dbt_params(rendered.configmap_data("-env")) == {"DBT_PG_SSLMODE": "require", "DBT_PG_CONNECT_TIMEOUT": "10"}


def test_warehouse_params_win_over_the_inherited_ones(render):
    rendered = render(set_values={**EXTERNAL, "warehouse.postgres.params.sslmode": "verify-full"})
    assert dbt_params(rendered.configmap_data("-env")) == {
        "DBT_PG_SSLMODE": "verify-full",
        "DBT_PG_CONNECT_TIMEOUT": "10",
    }
    # Dagster's storage keeps its own.
    assert rendered.instance_config()["storage"]["custom"]["config"]["postgres_db"]["params"]["sslmode"] == "require"


def test_a_warehouse_server_of_its_own_gets_only_its_own_params(render):
    rendered = render(CHART_DIR / "ci" / "external-postgresql-values.yaml")
    assert dbt_params(rendered.configmap_data("-env")) == {
        "DBT_PG_SSLMODE": "verify-full",
        "DBT_PG_SSLROOTCERT": "/etc/ssl/certs/ca-certificates.crt",
    }
    postgres_db = rendered.instance_config()["storage"]["custom"]["config"]["postgres_db"]
    assert postgres_db["params"] == {"sslmode": "require", "connect_timeout": "10"}


def test_embedded_postgresql_ignores_the_external_params(render):
    rendered = render(set_values={"externalPostgresql.params.sslmode": "require"})
    assert "params" not in rendered.instance_config()["storage"]["custom"]["config"]["postgres_db"]
    assert dbt_params(rendered.configmap_data("-env")) == {}


def test_snowflake_target_gets_no_postgres_params(render):
    rendered = render(
        CHART_DIR / "ci" / "snowflake-values.yaml", set_values={"warehouse.postgres.params.sslmode": "require"}
    )
    assert not any(name.startswith("DBT_PG_") for name in rendered.configmap_data("-env"))


@pytest.mark.parametrize("where", ["externalPostgresql", "warehouse.postgres"])
def test_params_change_the_config_checksum(render, where):
    """A new parameter is new config: the pods that read it restart."""
    base = {**EXTERNAL, "warehouse.postgres.params.application_name": "dbt"}
    changed = {**base, f"{where}.params.keepalives_idle": "30"}

    def checksum(rendered):
        return rendered.one("Deployment", "-daemon")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(render(set_values=changed)) != checksum(render(set_values=base))


def test_embedded_postgresql_settings_are_server_arguments(render):
    def postgres_args(rendered) -> list[str] | None:
        [container] = rendered.one("StatefulSet", "-postgresql")["spec"]["template"]["spec"]["containers"]
        return container.get("args")

    def settings(rendered) -> dict[str, str]:
        args = postgres_args(rendered) or []
        assert args[::2] == ["-c"] * (len(args) // 2), args
        return dict(setting.split("=", 1) for setting in args[1::2])

    # The chart's defaults: the sessions of a vanished client end in minutes (k8s_tests' partition scenario).
    assert settings(render()) == DEAD_CLIENT_SETTINGS
    rendered = render(
        set_values={"postgresql.settings.max_locks_per_transaction": "256", "postgresql.settings.log_lock_waits": "on"}
    )
    assert settings(rendered) == {**DEAD_CLIENT_SETTINGS, "log_lock_waits": "on", "max_locks_per_transaction": "256"}
    # null drops a default: PostgreSQL's own applies.
    rendered = render(set_values={"postgresql.settings.client_connection_check_interval": "null"})
    assert "client_connection_check_interval" not in settings(rendered)
