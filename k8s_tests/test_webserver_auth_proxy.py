"""Authentication in front of the UI (dagsterWebserver.authProxy) and the read-only webserver
(dagsterWebserver.readOnlyReplica), on kind, against a real OpenID Connect provider.

The provider (k8s_tests/images/oidc-provider: zitadel/oidc's provider library with a login form, a
static user and a static client) runs in the test's namespace. The chart goes into the same
namespace with oauth2-proxy in front of both webservers. Then:
- without a session the proxy sends a browser to the provider and refuses GraphQL (401);
- a headless Chromium logs in at the provider's form and reaches the UI (a page listing the code
  location, which only the webserver renders; screenshot docs/ui/auth-proxy-login.png);
- the browser's session cookie opens GraphQL on both webservers; the read-only one answers a
  query and refuses launchRun (UnauthorizedError).

How the services are reached: port-forwards from 127.0.0.1. The issuer URL must be the same for
the browser and the proxy (the ID token's `iss` is checked against it), so it is the provider's
Service name with a port that is also the port-forward's local port: the proxy resolves the name
through cluster DNS, and Chromium maps that one name to 127.0.0.1 (--host-resolver-rules).

Marked full_suite (`make k8s-test-full`): a release of its own (~3-4 minutes on kind).
Needs `make auth-proxy-image` (both images) and hack/install-chromium.sh.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from k8s_tests.harness.browser import CHROMEDRIVER, CHROMIUM, CHROMIUM_ARGS, INSTALL_HINT
from k8s_tests.harness.cluster import (
    ImageMissing,
    KindCluster,
    artifacts_dir_for,
    built_image,
)
from k8s_tests.harness.deployment import (
    CODE_LOCATION,
    REPO_ROOT,
    PortForward,
    component_name,
    free_port,
    run_up,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.full_suite, pytest.mark.usefixtures("namespace_artifacts_on_setup_failure")]

PROVIDER_NAME = "oidc-provider"
PROVIDER_CONTAINER_PORT = 5556
CLIENT_ID = "dagster"
USER_EMAIL = "viewer@example.com"
SECRET_NAME = "dagster-auth-proxy"
# The UI's page listing the code locations (Deployment > Code locations in its navigation).
LOCATIONS_PAGE = "/deployment/locations"
SCREENSHOT = REPO_ROOT / "docs" / "ui" / "auth-proxy-login.png"
RESTRICTED_LABELS = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
PROVIDER_READY_SECONDS = 120
PAGE_TIMEOUT_SECONDS = 120
REQUEST_TIMEOUT_SECONDS = 30
RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
LAUNCH_RUN = """mutation ($selector: JobOrPipelineSelector!) {
  launchRun(executionParams: {selector: $selector, runConfigData: {}}) {
    __typename
    ... on Error { message }
    ... on LaunchRunSuccess { run { runId } }
  }
}"""
LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus } } } }"""
RUNS = """{ runsOrError(limit: 5) { __typename ... on Runs { results { runId } } } }"""
REPOSITORIES = """{ repositoriesOrError { __typename ... on RepositoryConnection {
  nodes { name location { name } jobs { name } } } } }"""


class Provider:
    """The provider's settings, chosen before anything is installed (the port is in the issuer)."""

    def __init__(self, namespace: str) -> None:
        self.port = free_port()
        self.host = f"{PROVIDER_NAME}.{namespace}.svc.cluster.local"
        self.issuer = f"http://{self.host}:{self.port}/"
        self.client_secret = secrets.token_urlsafe(24)
        self.password = secrets.token_urlsafe(12)
        self.proxy_port = free_port()
        self.redirect_url = f"http://127.0.0.1:{self.proxy_port}/oauth2/callback"


def _deploy_provider(
    cluster: KindCluster, core_v1: client.CoreV1Api, apps_v1: client.AppsV1Api, namespace: str, provider: Provider
) -> None:
    image = built_image("OIDC_PROVIDER_IMAGE", "make auth-proxy-image")
    cluster.load_image(image)
    labels = {"app.kubernetes.io/name": PROVIDER_NAME}
    users = {
        "viewer": {
            "ID": "viewer",
            "Username": USER_EMAIL,
            "Password": provider.password,
            "FirstName": "Vera",
            "LastName": "Viewer",
            "Email": USER_EMAIL,
            "EmailVerified": True,
            "PreferredLanguage": "en",
        }
    }
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=PROVIDER_NAME),
            string_data={"users.json": json.dumps(users), "client-secret": provider.client_secret},
        ),
    )
    env = {
        "ISSUER": provider.issuer,
        "PORT": str(PROVIDER_CONTAINER_PORT),
        "CLIENT_ID": CLIENT_ID,
        "REDIRECT_URI": provider.redirect_url,
        "USERS_FILE": "/etc/oidc-provider/users.json",
    }
    container = {
        "name": PROVIDER_NAME,
        "image": image,
        "imagePullPolicy": "Never",
        "env": [{"name": k, "value": v} for k, v in env.items()]
        + [
            {
                "name": "CLIENT_SECRET",
                "valueFrom": {"secretKeyRef": {"name": PROVIDER_NAME, "key": "client-secret"}},
            }
        ],
        "ports": [{"name": "http", "containerPort": PROVIDER_CONTAINER_PORT}],
        "readinessProbe": {"httpGet": {"path": "/.well-known/openid-configuration", "port": "http"}},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "users", "mountPath": "/etc/oidc-provider", "readOnly": True}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    }
    apps_v1.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": PROVIDER_NAME, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [container],
                        "volumes": [
                            {
                                "name": "users",
                                "secret": {
                                    "secretName": PROVIDER_NAME,
                                    "items": [{"key": "users.json", "path": "users.json"}],
                                },
                            }
                        ],
                    },
                },
            },
        },
    )
    core_v1.create_namespaced_service(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": PROVIDER_NAME, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": provider.port, "targetPort": "http"}]},
        },
    )

    def ready() -> tuple[bool, str]:
        status = apps_v1.read_namespaced_deployment_status(PROVIDER_NAME, namespace).status
        return (status.ready_replicas or 0) >= 1, f"ready replicas: {status.ready_replicas}"

    wait_until(f"the OIDC provider {namespace}/{PROVIDER_NAME} to be ready", ready, PROVIDER_READY_SECONDS)


@pytest.fixture(scope="module")
def provider(namespace: str) -> Provider:
    return Provider(namespace)


@pytest.fixture(scope="module")
def proxied_release(
    kind_cluster: KindCluster,
    namespace: str,
    core_v1: client.CoreV1Api,
    k8s_client: client.ApiClient,
    provider: Provider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, PortForward]]:
    """The provider, then the chart with the auth proxy and the read-only webserver (hack/up.sh
    load + install: helm --wait, so both proxies and webservers are ready). Yields port-forwards:
    the provider's (local port = the issuer's), the webserver's (local port = redirectUrl's) and
    the read-only webserver's."""
    try:
        proxy_image = built_image("OAUTH2_PROXY_IMAGE", "make auth-proxy-image")
    except ImageMissing as error:
        pytest.fail(str(error))
    kind_cluster.load_image(proxy_image)
    core_v1.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED_LABELS}})
    apps_v1 = client.AppsV1Api(k8s_client)
    try:
        _deploy_provider(kind_cluster, core_v1, apps_v1, namespace, provider)
    except ImageMissing as error:
        pytest.fail(str(error))
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=SECRET_NAME),
            string_data={"client-secret": provider.client_secret, "cookie-secret": secrets.token_hex(16)},
        ),
    )
    repository, tag = proxy_image.rsplit(":", 1)
    values = {
        "dagsterWebserver": {
            "authProxy": {
                "enabled": True,
                "image": {"repository": repository, "tag": tag},
                "issuerUrl": provider.issuer,
                "clientId": CLIENT_ID,
                "existingSecret": SECRET_NAME,
                "redirectUrl": provider.redirect_url,
                # Plain HTTP through a port-forward.
                "cookieSecure": False,
                "emailDomains": ["example.com"],
            },
            "readOnlyReplica": {"enabled": True},
        },
        # The proxies' only way out besides the chart's own: the provider's discovery, keys and
        # token exchange (the chart's default-deny policies are on, enforced by the cluster).
        "networkPolicy": {
            "webserver": {
                "extraEgress": [
                    {
                        "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": PROVIDER_NAME}}}],
                        "ports": [{"protocol": "TCP", "port": "http"}],
                    }
                ]
            }
        },
    }
    values_file = tmp_path_factory.mktemp("auth-proxy") / "auth-proxy-values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    run_up(kind_cluster, namespace, "load install", more_values=(values_file,))
    kubeconfig = kind_cluster.kubeconfig
    forwards = {
        "provider": PortForward(kubeconfig, namespace, f"svc/{PROVIDER_NAME}", provider.port, provider.port),
        "webserver": PortForward(kubeconfig, namespace, f"svc/{component_name('webserver')}", 80, provider.proxy_port),
        "read-only": PortForward(kubeconfig, namespace, f"svc/{component_name('webserver-read-only')}", 80),
    }
    for forward in forwards.values():
        forward.ensure()
    yield forwards
    for forward in forwards.values():
        forward.stop()


def _url(forward: PortForward, path: str = "/") -> str:
    forward.ensure()
    return f"http://127.0.0.1:{forward.local_port}{path}"


def _graphql(forward: PortForward, query: str, cookies: dict[str, str] | None = None, **variables: Any):
    return requests.post(
        _url(forward, "/graphql"),
        json={"query": query, "variables": variables},
        headers={"Accept": "application/json"},
        cookies=cookies,
        allow_redirects=False,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )


def _chromium(provider: Provider) -> webdriver.Chrome:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            pytest.fail(f"{binary} not found: {INSTALL_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        if argument.startswith("--host-resolver-rules="):
            # The issuer's host name is the provider's port-forward; every other name stays unresolved.
            argument = f"--host-resolver-rules=MAP {provider.host} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(PAGE_TIMEOUT_SECONDS)
    return driver


def _body_text(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def test_without_a_session_the_proxy_refuses_and_sends_to_the_provider(
    proxied_release: dict[str, PortForward], provider: Provider
):
    for name in ("webserver", "read-only"):
        forward = proxied_release[name]
        page = requests.get(_url(forward), allow_redirects=False, timeout=REQUEST_TIMEOUT_SECONDS)
        assert page.status_code == 302, f"{name}: GET / without a session answered {page.status_code}"
        assert page.headers["Location"].startswith(f"{provider.issuer}auth?"), page.headers["Location"]
        assert f"client_id={CLIENT_ID}" in page.headers["Location"]
        answer = _graphql(forward, "{ version }")
        assert answer.status_code == 401, f"{name}: GraphQL without a session answered {answer.status_code}"
        assert "version" not in answer.text and "data" not in answer.text, answer.text
        print(f"{name}: GET / -> 302 to the provider; POST /graphql -> 401")


def test_browser_logs_in_at_the_provider_and_reaches_the_ui(
    proxied_release: dict[str, PortForward], provider: Provider
):
    webserver, read_only = proxied_release["webserver"], proxied_release["read-only"]
    driver = _chromium(provider)
    try:
        start = time.monotonic()
        driver.get(_url(webserver, LOCATIONS_PAGE))
        wait_until(
            "the provider's login form",
            lambda: (driver.current_url.startswith(f"{provider.issuer}login/username"), driver.current_url),
            PAGE_TIMEOUT_SECONDS,
        )
        driver.find_element(By.NAME, "username").send_keys(USER_EMAIL)
        driver.find_element(By.NAME, "password").send_keys(provider.password)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()

        # The code locations page lists the location by name: only the webserver's UI renders it.
        def ui_lists_the_location() -> tuple[bool, str]:
            try:
                url = driver.current_url
                text = _body_text(driver) if url.startswith(_url(webserver)) else ""
            except WebDriverException as error:  # the page replaced while read
                return False, repr(error)
            done = url.startswith(_url(webserver)) and "Code locations" in text and CODE_LOCATION in text
            return done, f"{url}: {text[:300]!r}"

        wait_until(f"the UI's code locations page to list {CODE_LOCATION}", ui_lists_the_location, PAGE_TIMEOUT_SECONDS)
        print(f"logged in at the provider and reached the UI in {time.monotonic() - start:.1f}s")
        time.sleep(2)  # let the page settle for the screenshot
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shot = artifacts_dir_for("auth-proxy") / "auth-proxy-login.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(shot)), "Chromium could not save the screenshot"
        shutil.copyfile(shot, SCREENSHOT)
        cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    finally:
        driver.quit()
    assert "_oauth2_proxy" in cookies, f"no session cookie after the login: {sorted(cookies)}"

    # The session opens GraphQL on both webservers (one cookie secret: the session is valid on both).
    answer = _graphql(webserver, LOCATIONS, cookies)
    assert answer.status_code == 200, answer.text[:500]
    entries = answer.json()["data"]["workspaceOrError"]["locationEntries"]
    assert CODE_LOCATION in [e["name"] for e in entries], entries
    runs = _graphql(read_only, RUNS, cookies)
    assert runs.status_code == 200, runs.text[:500]
    assert runs.json()["data"]["runsOrError"]["__typename"] == "Runs", runs.text[:500]

    # The read-only webserver refuses to launch a job the writable one lists.
    repositories = _graphql(webserver, REPOSITORIES, cookies).json()["data"]["repositoriesOrError"]
    assert repositories["__typename"] == "RepositoryConnection", repositories
    repository = next(r for r in repositories["nodes"] if r["location"]["name"] == CODE_LOCATION)
    job = repository["jobs"][0]["name"]
    selector = {"repositoryLocationName": CODE_LOCATION, "repositoryName": repository["name"], "jobName": job}
    launched = _graphql(read_only, LAUNCH_RUN, cookies, selector=selector).json()["data"]["launchRun"]
    assert launched["__typename"] == "UnauthorizedError", launched
    print(f"read-only webserver refused launchRun of {job}: {launched['message']}")
