"""dagsterWebserver.authProxy, readOnly and readOnlyReplica: with the proxy on, the webserver
listens on loopback only and every Service port (so the Ingress) is the proxy's; the read-only
webserver is a second Deployment and Service started with --read-only."""

from __future__ import annotations

import subprocess

import pytest
from chart_render import CHART_DIR, REPO_ROOT, assert_refused, load_values

AUTH_PROXY_VALUES = CHART_DIR / "ci" / "webserver-auth-proxy-values.yaml"
WEBSERVER_PORT = 3000
PROXY_PORT = 4180


def _containers(deployment):
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def _host_and_flags(webserver):
    command = webserver["command"]
    return command[command.index("-h") + 1], command


def test_default_has_one_webserver_without_proxy_listening_on_all_addresses(render):
    rendered = render()
    (deployment,) = [d for d in rendered.of_kind("Deployment") if "-webserver" in d["metadata"]["name"]]
    containers = _containers(deployment)
    assert set(containers) == {"webserver"}
    host, command = _host_and_flags(containers["webserver"])
    assert host == "0.0.0.0" and "--read-only" not in command
    assert containers["webserver"]["ports"] == [{"name": "http", "containerPort": WEBSERVER_PORT, "protocol": "TCP"}]
    assert containers["webserver"]["readinessProbe"]["httpGet"] == {"path": "/server_info", "port": "http"}


def test_read_only_adds_the_flag(render):
    deployment = render(set_values={"dagsterWebserver.readOnly": "true"}).one("Deployment", "-webserver")
    assert "--read-only" in _containers(deployment)["webserver"]["command"]


@pytest.mark.parametrize("suffix", ["-webserver", "-webserver-read-only"])
def test_behind_the_proxy_only_the_proxy_port_is_reachable(render, suffix):
    rendered = render(AUTH_PROXY_VALUES)
    deployment = rendered.one("Deployment", suffix)
    containers = _containers(deployment)
    assert set(containers) == {"webserver", "auth-proxy"}
    host, _ = _host_and_flags(containers["webserver"])
    assert host == "127.0.0.1"
    assert "ports" not in containers["webserver"]
    assert containers["auth-proxy"]["ports"] == [{"name": "http", "containerPort": PROXY_PORT, "protocol": "TCP"}]
    (port,) = rendered.one("Service", suffix)["spec"]["ports"]
    assert port["targetPort"] == "http"
    # The webserver's probes ask it on loopback from inside its container, not through the proxy.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = containers["webserver"][probe]["exec"]["command"]
        assert f"http://127.0.0.1:{WEBSERVER_PORT}/server_info" in command[-1]
    assert containers["auth-proxy"]["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}


def test_proxy_arguments_and_secrets_come_from_the_values(render):
    proxy = _containers(render(AUTH_PROXY_VALUES).one("Deployment", "-webserver"))["auth-proxy"]
    args = proxy["args"]
    assert f"--upstream=http://127.0.0.1:{WEBSERVER_PORT}/" in args
    assert f"--http-address=0.0.0.0:{PROXY_PORT}" in args
    for expected in (
        "--provider=oidc",
        "--oidc-issuer-url=https://dex.example.com",
        "--client-id=dagster",
        "--redirect-url=https://dagster.example.com/oauth2/callback",
        "--cookie-secure=true",
        "--email-domain=example.com",
        "--allowed-group=data-platform",
        "--scope=openid email profile groups",
        "--reverse-proxy=true",
    ):
        assert expected in args
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in proxy["env"]}
    assert secrets == {
        "OAUTH2_PROXY_CLIENT_SECRET": {"name": "dagster-auth-proxy", "key": "client-secret"},
        "OAUTH2_PROXY_COOKIE_SECRET": {"name": "dagster-auth-proxy", "key": "cookie-secret"},
    }
    # No secret value in the arguments.
    assert not [a for a in args if "secret" in a.lower()]


def test_read_only_replica_has_its_own_service_and_the_flag(render):
    rendered = render(AUTH_PROXY_VALUES)
    deployment = rendered.one("Deployment", "-webserver-read-only")
    service = rendered.component_service("webserver-read-only")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    assert "--read-only" in _containers(deployment)["webserver"]["command"]
    # The operators' webserver stays writable, and its Service selects its pods only.
    assert "--read-only" not in _containers(rendered.one("Deployment", "-webserver"))["webserver"]["command"]
    assert rendered.component_service("webserver")["spec"]["selector"]["app.kubernetes.io/component"] == "webserver"


def test_helm_test_checks_the_proxy_refuses_a_request_without_a_session(render):
    (pod,) = render(AUTH_PROXY_VALUES).of_kind("Pod")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["AUTH_PROXY"] == "true"


def test_default_image_is_the_one_make_builds():
    """versions.env names the image `make auth-proxy-image` builds; the chart's default is it."""
    built = subprocess.run(
        ["bash", "-c", 'source versions.env && echo "${OAUTH2_PROXY_IMAGE}"'],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    image = load_values(None)["dagsterWebserver"]["authProxy"]["image"]
    assert f"{image['repository']}:{image['tag']}" == built


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"issuerUrl": ""}, "dagsterWebserver.authProxy.issuerUrl: required"),
        ({"clientId": ""}, "dagsterWebserver.authProxy.clientId: required"),
        ({"existingSecret": ""}, "dagsterWebserver.authProxy.existingSecret: required"),
        ({"emailDomains": []}, "dagsterWebserver.authProxy.emailDomains: list at least one domain"),
        ({"image": {"repository": "x", "tag": "latest", "pullPolicy": "IfNotPresent"}}, "authProxy.image.tag"),
        ({"port": 3000}, "port"),
    ],
)
def test_incomplete_proxy_values_are_refused_naming_the_key(helm, tmp_path, change, expected):
    values = {
        "dagsterWebserver": {
            "authProxy": {
                "enabled": True,
                "issuerUrl": "https://dex.example.com",
                "clientId": "dagster",
                "existingSecret": "s",
                "emailDomains": ["example.com"],
                **change,
            }
        }
    }
    assert_refused(helm, tmp_path, values, expected)
