"""Step logs (`computeLogs`): none kept by default; with manager s3, dagster-aws's
S3ComputeLogManager in dagster.yaml and the bucket's credentials in every container that loads the
instance, run pods included. Bad values are refused naming the key."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from chart_render import CHART_DIR, assert_refused, helm_template, merge_values, run_worker_job

S3_VALUES = CHART_DIR / "ci" / "compute-logs-s3-values.yaml"
S3_CONFIG = yaml.safe_load(S3_VALUES.read_text())["computeLogs"]["s3"]
AWS_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
# The smallest valid s3 setup, which the cases below change one key at a time.
S3_MINIMAL = {
    "computeLogs.manager": "s3",
    "computeLogs.s3.bucket": "step-logs",
    "computeLogs.s3.existingSecret": "s3-credentials",
}


def compute_logs(rendered) -> dict[str, Any]:
    return rendered.instance_config()["compute_logs"]


def instance_containers(rendered) -> list[tuple[str, dict[str, Any]]]:
    """(where, container) of every container that loads the instance (it has DAGSTER_HOME), the
    run pod dagster_k8s builds from the launcher's config included."""
    launcher = rendered.instance_config()["run_launcher"]["config"]
    run_pod = run_worker_job(launcher)["spec"]["template"]["spec"]
    found = []
    for where, spec in [*rendered.pod_specs(), ("run pod", run_pod)]:
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            if any(var["name"] == "DAGSTER_HOME" for var in container.get("env") or []):
                found.append((f"{where}/{container['name']}", container))
    return found


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in container.get("env") or []}


def test_step_logs_are_kept_nowhere_by_default(render):
    rendered = render()
    assert compute_logs(rendered) == {
        "module": "dagster._core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    }
    for where, container in instance_containers(rendered):
        assert not AWS_ENV & env_of(container).keys(), where


def test_s3_manager_is_configured_from_the_values(render):
    from dagster._config import process_config
    from dagster._serdes import ConfigurableClassData
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    section = compute_logs(render(S3_VALUES))
    assert (section["module"], section["class"]) == ("dagster_aws.s3.compute_log_manager", "S3ComputeLogManager")
    assert section["config"] == {
        "bucket": S3_CONFIG["bucket"],
        "prefix": S3_CONFIG["prefix"],
        "local_dir": "/tmp/dagster-compute-logs",
        "endpoint_url": S3_CONFIG["endpointUrl"],
        "region": S3_CONFIG["region"],
        "verify": True,
        "upload_interval": S3_CONFIG["uploadIntervalSeconds"],
    }
    # dagster-aws accepts it, and its S3 client talks to the endpoint (no request is made).
    result = process_config(S3ComputeLogManager.config_type(), section["config"])
    assert result.success, result.errors
    manager = S3ComputeLogManager.from_config_value(ConfigurableClassData("m", "c", ""), result.value)
    assert manager._s3_session.meta.endpoint_url == S3_CONFIG["endpointUrl"]


def test_every_container_that_loads_the_instance_gets_the_credentials(render):
    rendered = render(S3_VALUES)
    containers = instance_containers(rendered)
    wheres = {where.split("/")[0] for where, _ in containers}
    # Run workers write, the webserver reads, the daemon (backfills) and code servers (sensors,
    # schedules) write logs of their own; the hooks load the instance too.
    assert {"Deployment", "Job", "run pod"} <= wheres
    for component in ("webserver", "daemon", "code-location"):
        assert any(component in where for where, _ in containers), component
    for where, container in containers:
        env = env_of(container)
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"] == {
            "secretKeyRef": {"name": S3_CONFIG["existingSecret"], "key": "AWS_ACCESS_KEY_ID"}
        }, where
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {
            "secretKeyRef": {"name": S3_CONFIG["existingSecret"], "key": "AWS_SECRET_ACCESS_KEY"}
        }, where
        assert env["AWS_DEFAULT_REGION"] == {"name": "AWS_DEFAULT_REGION", "value": S3_CONFIG["region"]}, where
    # PostgreSQL does not load the instance, and gets nothing.
    for where, spec in rendered.pod_specs():
        if "postgresql" in where:
            for container in spec["containers"]:
                assert not AWS_ENV & env_of(container).keys(), where


def test_logs_are_staged_in_the_writable_tmp_of_every_pod(render):
    """The root filesystem is read-only: the staging directory must be on the /tmp emptyDir."""
    rendered = render(S3_VALUES)
    local_dir = compute_logs(rendered)["config"]["local_dir"]
    assert local_dir.startswith("/tmp/")
    launcher = rendered.instance_config()["run_launcher"]["config"]
    run_pod = run_worker_job(launcher)["spec"]["template"]["spec"]
    specs = {where: spec for where, spec in rendered.pod_specs()} | {"run pod": run_pod}
    for where, container in instance_containers(rendered):
        spec = specs[where.rsplit("/", 1)[0]]
        tmp = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
        assert len(tmp) == 1, f"{where}: no /tmp mount"
        volume = next(v for v in spec["volumes"] if v["name"] == tmp[0]["name"])
        assert "emptyDir" in volume, f"{where}: /tmp is {volume}"


@pytest.mark.parametrize(
    ("values", "config", "env"),
    [
        pytest.param(
            {}, {"bucket": "step-logs", "prefix": "dagster", "verify": True, "upload_interval": 30}, {}, id="defaults"
        ),
        pytest.param({"computeLogs.s3.prefix": "logs/prod"}, {"prefix": "logs/prod"}, {}, id="prefix"),
        pytest.param(
            {"computeLogs.s3.endpointUrl": "https://minio.storage:9000"},
            {"endpoint_url": "https://minio.storage:9000"},
            {},
            id="endpointUrl",
        ),
        pytest.param(
            {"computeLogs.s3.region": "eu-central-1"},
            {"region": "eu-central-1"},
            {"AWS_DEFAULT_REGION": {"value": "eu-central-1"}},
            id="region",
        ),
        pytest.param({"computeLogs.s3.verifyCertificates": "false"}, {"verify": False}, {}, id="verifyCertificates"),
        pytest.param(
            {"computeLogs.s3.caBundlePath": "/etc/s3-ca/ca.crt"},
            {"verify": True, "verify_cert_path": "/etc/s3-ca/ca.crt"},
            {},
            id="caBundlePath",
        ),
        pytest.param({"computeLogs.s3.uploadIntervalSeconds": "5"}, {"upload_interval": 5}, {}, id="uploadInterval"),
        pytest.param(
            {"computeLogs.s3.uploadIntervalSeconds": "0"}, {"upload_interval": None}, {}, id="uploadInterval-0"
        ),
        pytest.param(
            {"computeLogs.s3.uploadExtraArgs.ServerSideEncryption": "aws:kms"},
            {"upload_extra_args": {"ServerSideEncryption": "aws:kms"}},
            {},
            id="uploadExtraArgs",
        ),
        pytest.param(
            {"computeLogs.s3.existingSecret": "other-s3"},
            {},
            {
                "AWS_ACCESS_KEY_ID": {"valueFrom": {"secretKeyRef": {"name": "other-s3", "key": "AWS_ACCESS_KEY_ID"}}},
                "AWS_SECRET_ACCESS_KEY": {
                    "valueFrom": {"secretKeyRef": {"name": "other-s3", "key": "AWS_SECRET_ACCESS_KEY"}}
                },
            },
            id="existingSecret",
        ),
        pytest.param(
            {"computeLogs.s3.accessKeyIdKey": "access-key", "computeLogs.s3.secretAccessKeyKey": "secret-key"},
            {},
            {
                "AWS_ACCESS_KEY_ID": {"valueFrom": {"secretKeyRef": {"name": "s3-credentials", "key": "access-key"}}},
                "AWS_SECRET_ACCESS_KEY": {
                    "valueFrom": {"secretKeyRef": {"name": "s3-credentials", "key": "secret-key"}}
                },
            },
            id="secret-keys",
        ),
    ],
)
def test_each_s3_key_reaches_the_config_or_the_env(render, values, config, env):
    """`config`: keys of the manager's config that must have that value (None: absent); `env`:
    env vars every container that loads the instance must have (name left out)."""
    rendered = render(set_values={**S3_MINIMAL, **values})
    rendered_config = compute_logs(rendered)["config"]
    for key, value in config.items():
        assert rendered_config.get(key) == value, key
    if "computeLogs.s3.endpointUrl" not in values:
        assert "endpoint_url" not in rendered_config
    if "computeLogs.s3.region" not in values:
        assert "region" not in rendered_config
    for where, container in instance_containers(rendered):
        container_env = env_of(container)
        for name, expected in env.items():
            assert {k: v for k, v in container_env[name].items() if k != "name"} == expected, f"{where}: {name}"
        if "computeLogs.s3.region" not in values:
            assert "AWS_DEFAULT_REGION" not in container_env, where


def test_an_s3_block_is_ignored_by_the_noop_manager(render):
    rendered = render(set_values={**S3_MINIMAL, "computeLogs.manager": "noop"})
    assert compute_logs(rendered)["class"] == "NoOpComputeLogManager"
    for where, container in instance_containers(rendered):
        assert not AWS_ENV & env_of(container).keys(), where


def test_changing_the_compute_logs_restarts_the_dagster_pods(render):
    def checksum(rendered):
        return rendered.one("Deployment", "-daemon")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = render(set_values=S3_MINIMAL)
    assert checksum(render(set_values={**S3_MINIMAL, "computeLogs.s3.prefix": "other"})) != checksum(base)
    assert checksum(render()) != checksum(base)


def test_pod_extras_may_set_the_aws_env_only_without_the_s3_manager(helm, render):
    extra = {"podDefaults.env[0].name": "AWS_ACCESS_KEY_ID", "podDefaults.env[0].value": "x"}
    render(set_values=extra)  # noop: the user's own AWS client may need it
    result = helm_template(helm, set_values={**S3_MINIMAL, **extra})
    assert result.returncode != 0
    assert "podDefaults.env[0]: AWS_ACCESS_KEY_ID is set by the chart from its values" in result.stderr


# (id, values, text the error must contain: it names the key)
BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown-manager",
        {"computeLogs": {"manager": "gcs"}},
        "at '/computeLogs/manager': value must be one of 'noop', 's3'",
    ),
    (
        "s3-without-bucket",
        {"computeLogs": {"manager": "s3", "s3": {"existingSecret": "s3-credentials"}}},
        "computeLogs.s3.bucket is required when computeLogs.manager is s3",
    ),
    (
        "s3-without-existing-secret",
        {"computeLogs": {"manager": "s3", "s3": {"bucket": "step-logs"}}},
        "computeLogs.s3.existingSecret is required when computeLogs.manager is s3",
    ),
    (
        "unknown-s3-key",
        {"computeLogs": {"s3": {"useSsl": False}}},
        "at '/computeLogs/s3': additional properties 'useSsl' not allowed",
    ),
    (
        "bucket-name-with-capitals",
        {"computeLogs": {"s3": {"bucket": "Step_Logs"}}},
        "at '/computeLogs/s3/bucket': 'Step_Logs' does not match pattern",
    ),
    (
        "endpoint-without-scheme",
        {"computeLogs": {"s3": {"endpointUrl": "minio.storage:9000"}}},
        "at '/computeLogs/s3/endpointUrl': 'minio.storage:9000' does not match pattern",
    ),
    (
        "negative-upload-interval",
        {"computeLogs": {"s3": {"uploadIntervalSeconds": -1}}},
        "at '/computeLogs/s3/uploadIntervalSeconds': minimum: got -1, want 0",
    ),
    (
        "relative-ca-bundle-path",
        {"computeLogs": {"s3": {"caBundlePath": "ca.crt"}}},
        "at '/computeLogs/s3/caBundlePath': 'ca.crt' does not match pattern '^$|^/'",
    ),
    (
        "ca-bundle-without-verification",
        {
            "computeLogs": {
                "manager": "s3",
                "s3": {
                    "bucket": "step-logs",
                    "existingSecret": "s3-credentials",
                    "caBundlePath": "/etc/s3-ca/ca.crt",
                    "verifyCertificates": False,
                },
            }
        },
        "computeLogs.s3.caBundlePath is set while computeLogs.s3.verifyCertificates is false",
    ),
    (
        "secret-name-with-capitals",
        {"computeLogs": {"s3": {"existingSecret": "S3-Credentials"}}},
        "at '/computeLogs/s3/existingSecret': 'S3-Credentials' does not match pattern",
    ),
    (
        "empty-access-key-id-key",
        {"computeLogs": {"s3": {"accessKeyIdKey": ""}}},
        "at '/computeLogs/s3/accessKeyIdKey': '' does not match pattern",
    ),
    (
        "secret-access-key-key-with-a-slash",
        {"computeLogs": {"s3": {"secretAccessKeyKey": "aws/secret"}}},
        "at '/computeLogs/s3/secretAccessKeyKey': 'aws/secret' does not match pattern",
    ),
    (
        "string-for-verify-certificates",
        {"computeLogs": {"s3": {"verifyCertificates": "no"}}},
        "at '/computeLogs/s3/verifyCertificates': got string, want boolean",
    ),
    (
        "upload-extra-args-not-a-map",
        {"computeLogs": {"s3": {"uploadExtraArgs": ["ServerSideEncryption"]}}},
        "at '/computeLogs/s3/uploadExtraArgs': got array, want object",
    ),
]

# What each case's offending key must be instead for the same file to render.
FIXES: dict[str, dict[str, Any]] = {
    "unknown-manager": {"manager": "s3"},
    "s3-without-bucket": {"s3": {"bucket": "step-logs"}},
    "s3-without-existing-secret": {"s3": {"existingSecret": "s3-credentials"}},
    "unknown-s3-key": {"s3": {"useSsl": None}},
    "bucket-name-with-capitals": {"s3": {"bucket": "step-logs"}},
    "endpoint-without-scheme": {"s3": {"endpointUrl": "http://minio.storage:9000"}},
    "negative-upload-interval": {"s3": {"uploadIntervalSeconds": 0}},
    "relative-ca-bundle-path": {"s3": {"caBundlePath": "/etc/s3-ca/ca.crt"}},
    "ca-bundle-without-verification": {"s3": {"verifyCertificates": True}},
    "secret-name-with-capitals": {"s3": {"existingSecret": "s3-credentials"}},
    "empty-access-key-id-key": {"s3": {"accessKeyIdKey": "access-key-id"}},
    "secret-access-key-key-with-a-slash": {"s3": {"secretAccessKeyKey": "secret-access-key"}},
    "string-for-verify-certificates": {"s3": {"verifyCertificates": False}},
    "upload-extra-args-not-a-map": {"s3": {"uploadExtraArgs": {"ServerSideEncryption": "AES256"}}},
}


@pytest.mark.parametrize(("values", "expected"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
def test_bad_values_are_refused_naming_the_key(helm, tmp_path, values, expected):
    assert_refused(helm, tmp_path, values, expected)


@pytest.mark.parametrize(("case_id", "values"), [c[:2] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
def test_each_bad_case_renders_once_its_key_is_fixed(helm, tmp_path, case_id, values):
    """Each case fails for its own key: with it corrected (and, for a case about the s3 block, the
    s3 manager's required keys), the same file renders."""
    fixed = {"computeLogs": merge_values(values["computeLogs"], FIXES[case_id])}
    if fixed["computeLogs"].get("manager") == "s3" or case_id.startswith("s3-"):
        fixed = {
            "computeLogs": merge_values(
                {"manager": "s3", "s3": {"bucket": "b3-logs", "existingSecret": "s"}}, fixed["computeLogs"]
            )
        }
    values_file = tmp_path / "fixed-values.yaml"
    values_file.write_text(yaml.safe_dump(fixed))
    result = helm_template(helm, [values_file])
    assert result.returncode == 0, result.stderr
