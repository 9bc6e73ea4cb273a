"""Rendering the chart for the tests in tests/chart: `helm template` into objects, and the
values they come from. No cluster is needed."""

from __future__ import annotations

import base64
import functools
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dagster_code.local.cache import cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "dagster-dbt-k8s"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
# Default values plus each ci scenario; ids are the scenario names ("default", "kind", ...).
SCENARIOS = [None, *CI_VALUES]
SCENARIO_IDS = ["default", *(p.name.removesuffix("-values.yaml") for p in CI_VALUES)]
RELEASE = "chart-test"
NAMESPACE = "dagster-chart-test"
POD_KINDS = {"Deployment", "StatefulSet", "Job", "Pod", "DaemonSet", "ReplicaSet", "CronJob"}
# The embedded PostgreSQL's passwords, given to every render unless a test asks for generated ones:
# `helm template` cannot look up the kept Secret, so generated ones (and the checksum annotations
# over them) would differ between two renders the tests compare.
FIXED_PASSWORDS = {
    "postgresql.password": "dagster-test-password",
    "postgresql.warehousePassword": "warehouse-test-password",
    "postgresql.superuserPassword": "superuser-test-password",
}


def cache_bin() -> Path:
    """CACHE_BIN of hack/lib.sh, where hack/install-helm.sh puts helm."""
    return cache_dir() / "bin"


@dataclass(frozen=True)
class Rendered:
    """The objects of one `helm template`, with lookups the tests share."""

    docs: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name_suffix: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, (
            f"expected one {kind} named *{name_suffix}, found {[d['metadata']['name'] for d in found]}"
        )
        return found[0]

    def component_service(self, component: str) -> dict[str, Any]:
        """The one Service selecting a component's pods (the code location's is named per version)."""
        found = [
            d for d in self.of_kind("Service") if d["spec"]["selector"].get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one Service of component {component}, found {found}"
        return found[0]

    def configmap_data(self, name_suffix: str) -> dict[str, str]:
        return self.one("ConfigMap", name_suffix)["data"]

    def instance_config(self) -> dict[str, Any]:
        return yaml.safe_load(self.configmap_data("-instance")["dagster.yaml"])

    def secret_values(self) -> list[str]:
        return [
            base64.b64decode(value).decode()
            for secret in self.of_kind("Secret")
            for value in (secret.get("data") or {}).values()
        ]

    def pod_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """(kind/name, pod spec) of every object that makes pods."""
        specs = []
        for doc in self.docs:
            if doc["kind"] not in POD_KINDS:
                continue
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] == "Pod":
                specs.append((where, doc["spec"]))
            elif doc["kind"] == "CronJob":
                specs.append((where, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
            else:
                specs.append((where, doc["spec"]["template"]["spec"]))
        return specs


def helm_template(
    helm: str,
    values_files: Iterable[Path] = (),
    set_values: Mapping[str, str] | None = None,
    extra_args: Iterable[str] = (),
    generated_passwords: bool = False,
) -> subprocess.CompletedProcess[str]:
    args = [helm, "template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE]
    for path in values_files:
        args += ["--values", str(path)]
    fixed = {} if generated_passwords else FIXED_PASSWORDS
    for key, value in {**fixed, **(set_values or {})}.items():
        args += ["--set", f"{key}={value}"]
    args += list(extra_args)
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@functools.cache
def render_cached(helm: str, values_files: tuple[Path, ...], set_items: tuple[tuple[str, str], ...]) -> Rendered:
    result = helm_template(helm, values_files, dict(set_items))
    if result.returncode != 0:
        raise AssertionError(f"helm template failed ({values_files}, {set_items}):\n{result.stderr}")
    docs = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
    return Rendered(docs)


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base` as Helm merges values: maps merge, lists replace, null deletes."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(values_file: Path | None) -> dict[str, Any]:
    """values.yaml merged with a ci file as Helm does."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    if values_file:
        values = merge_values(values, yaml.safe_load(values_file.read_text()) or {})
    return values


def render_values(helm: str, tmp_path: Path, values: dict[str, Any]) -> Rendered:
    """`helm template` of values given as a dict, written to a new file under tmp_path."""
    values_file = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = helm_template(helm, [values_file])
    assert result.returncode == 0, result.stderr
    return Rendered(tuple(d for d in yaml.safe_load_all(result.stdout) if d))


def assert_refused(helm: str, tmp_path: Path, values: dict[str, Any], expected: str) -> None:
    """`helm template` of `values` fails, and its error contains `expected` (the key it names)."""
    values_file = tmp_path / "bad-values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = helm_template(helm, [values_file])
    assert result.returncode != 0, f"helm template accepted {values}"
    assert expected in result.stderr, result.stderr


def run_worker_job(launcher: dict[str, Any]) -> dict[str, Any]:
    """The Kubernetes Job dagster_k8s builds for a run from this launcher config, as a manifest."""
    import kubernetes
    from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

    job_config = DagsterK8sJobConfig(
        job_image=launcher["job_image"],
        dagster_home=launcher["dagster_home"],
        image_pull_policy=launcher["image_pull_policy"],
        image_pull_secrets=launcher.get("image_pull_secrets"),
        service_account_name=launcher["service_account_name"],
        instance_config_map=launcher["instance_config_map"],
        env_config_maps=launcher["env_config_maps"],
        env_secrets=launcher.get("env_secrets"),
        volume_mounts=launcher["volume_mounts"],
        volumes=launcher["volumes"],
        labels=launcher["labels"],
        resources=launcher["resources"],
    )
    job = construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_run", "{}"],
        job_name="dagster-run-0123456789",
        user_defined_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher["run_k8s_config"]),
        component="run_worker",
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


# What dagster_k8s 0.29's run launcher and its client call (launch, health check, debug,
# terminate), as (apiGroup, resource, verb): the daemon's Role, and the union of every Role.
RUN_LAUNCHER_CALLS = {
    ("batch", "jobs", "create"),
    ("batch", "jobs", "get"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "delete"),
    ("batch", "jobs/status", "get"),
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "pods", "delete"),
    ("", "pods/log", "get"),
    ("", "events", "list"),
}
