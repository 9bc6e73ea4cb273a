"""A ServiceAccount per component (serviceAccount in values.yaml): the daemon's Role holds the run
launcher's calls, the webserver's only what terminating a run calls, the other accounts no Role;
a token is mounted only where a process reads it. Enforcement (`kubectl auth can-i` as each
account) is proven on kind (k8s_tests/test_network_policy.py)."""

from __future__ import annotations

import pytest
import yaml
from chart_render import RUN_LAUNCHER_CALLS, Rendered, helm_template, render_values, run_worker_job

ACCOUNTS = {
    "webserver": "webserver",
    "daemon": "daemon",
    "codeLocation": "code-location",
    "runWorker": "run-worker",
    "postgresql": "postgresql",
    "hooks": "hooks",
}
FULLNAME = "chart-test-dagster-dbt-k8s"
# The pods of each account, by the kind/name prefix pod_specs() gives them, and whether they mount
# the token.
PODS = {
    "Deployment/chart-test-dagster-dbt-k8s-webserver": ("webserver", True),
    "Deployment/chart-test-dagster-dbt-k8s-daemon": ("daemon", True),
    "Deployment/chart-test-dagster-dbt-k8s-code-location": ("code-location", False),
    "StatefulSet/chart-test-dagster-dbt-k8s-postgresql": ("postgresql", False),
    "Job/chart-test-dagster-dbt-k8s-migrate": ("hooks", True),
    "Job/chart-test-dagster-dbt-k8s-pools": ("hooks", False),
}


def rules(rendered: Rendered, component: str) -> set[tuple[str, str, str]]:
    (role,) = [r for r in rendered.of_kind("Role") if r["metadata"]["name"] == f"{FULLNAME}-{component}"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_one_account_per_component_and_a_token_only_where_it_is_read(render):
    rendered = render()
    assert sorted(sa["metadata"]["name"] for sa in rendered.of_kind("ServiceAccount")) == sorted(
        f"{FULLNAME}-{suffix}" for suffix in ACCOUNTS.values()
    )
    specs = dict(rendered.pod_specs())
    for where, (account, token) in PODS.items():
        spec = specs[where]
        assert spec["serviceAccountName"] == f"{FULLNAME}-{account}", where
        assert spec["automountServiceAccountToken"] is token, where
    launcher = rendered.instance_config()["run_launcher"]["config"]
    assert launcher["service_account_name"] == f"{FULLNAME}-run-worker"
    run_pod = run_worker_job(launcher)["spec"]["template"]["spec"]
    assert run_pod["serviceAccountName"] == f"{FULLNAME}-run-worker"
    assert run_pod["automountServiceAccountToken"] is False


def test_only_the_daemon_and_the_webserver_have_roles(render):
    rendered = render()
    bound = {
        binding["roleRef"]["name"]: [s["name"] for s in binding["subjects"]]
        for binding in rendered.of_kind("RoleBinding")
    }
    assert bound == {
        f"{FULLNAME}-daemon": [f"{FULLNAME}-daemon"],
        f"{FULLNAME}-webserver": [f"{FULLNAME}-webserver"],
    }
    assert rules(rendered, "daemon") == RUN_LAUNCHER_CALLS
    # Terminating a run: delete_job lists the Job's pods, deletes the Job, then the pods.
    assert rules(rendered, "webserver") == {("batch", "jobs", "delete"), ("", "pods", "list"), ("", "pods", "delete")}
    assert not rendered.of_kind("ClusterRole") and not rendered.of_kind("ClusterRoleBinding")


def test_resuming_runs_mounts_the_token_in_every_project_pod(render):
    """With resume attempts above 0 every process that loads the instance builds the run launcher,
    which reads the token; the accounts still have no Role."""
    rendered = render(set_values={"dagsterDaemon.runMonitoring.maxResumeRunAttempts": "1"})
    specs = dict(rendered.pod_specs())
    for where, (account, _) in PODS.items():
        assert specs[where]["automountServiceAccountToken"] is (account != "postgresql"), where
    run_pod = run_worker_job(rendered.instance_config()["run_launcher"]["config"])["spec"]["template"]["spec"]
    assert run_pod["automountServiceAccountToken"] is True


def test_existing_accounts_are_used_per_component(helm, tmp_path):
    names = {key: {"name": f"team-{suffix}"} for key, suffix in ACCOUNTS.items()}
    rendered = render_values(helm, tmp_path, {"serviceAccount": {"create": False, **names}})
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        assert not rendered.of_kind(kind), kind
    specs = dict(rendered.pod_specs())
    for where, (account, _) in PODS.items():
        assert specs[where]["serviceAccountName"] == f"team-{account}", where
    assert rendered.instance_config()["run_launcher"]["config"]["service_account_name"] == "team-run-worker"


@pytest.mark.parametrize("missing", list(ACCOUNTS))
def test_an_existing_account_without_a_name_is_refused_naming_the_value(helm, tmp_path, missing):
    names = {key: {"name": f"team-{suffix}"} for key, suffix in ACCOUNTS.items() if key != missing}
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump({"serviceAccount": {"create": False, **names}}))
    result = helm_template(helm, [values_file])
    assert result.returncode != 0
    assert f"serviceAccount.{missing}.name is required when serviceAccount.create is false" in result.stderr
