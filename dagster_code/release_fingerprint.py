"""What a release is built with beyond its models' own code: compared between the runs of a
release, so a retry under other code refuses before dbt runs (dagster_code/release.py).

Split with dagster_code/code_versions.py by where a fact belongs. What one node reads (its
materialization macro, the sources and seeds it reads) is in that node's code version, so the
refusal names the models built two ways even for releases recorded before this fingerprint
existed. What is not tied to a node is here, as named parts a refusal can quote:

- `var '<name>'`: the root project's `vars:` in dbt_project.yml, as written. dbt does not record
  which node reads which var, so every var counts for the whole release. Left out: the vars the
  platform passes per run (`release_id`, differing per release by design, and dagster.yml's
  `vars_from_run_tags`, which only the first run of a release receives: they are meant to differ
  between a run and its retry).
- `dbt-core`, `dbt-adapters`, `dbt-<adapter>`: the installed versions (dbt's built-in macros,
  materializations among them, ship in the last two).
- `package '<name>'`: each installed package's version (dbt_project.yml under dbt_packages/).
- the release models' inputs (`CodeVersions.node_inputs`), repeated here under their names, so a
  refusal says "seed 'x' contents" and not only which models it changed.

Only names and short digests are recorded, never a var's value: a var may hold something not
meant for the event log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from dagster_code.code_versions import CodeVersions

DBT_PROJECT_FILE = "dbt_project.yml"
# Where `dbt deps` installs packages unless dbt_project.yml's `packages-install-path` says.
DEFAULT_PACKAGES_INSTALL_PATH = "dbt_packages"
ABSENT = "(none)"
DBT_CORE_DISTRIBUTION = "dbt-core"
# Since dbt 1.8 the adapters' shared base, with the `dbt` package of macros.
DBT_ADAPTERS_DISTRIBUTION = "dbt-adapters"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ABSENT


def release_fingerprint(
    manifest: Mapping[str, Any], project_dir: Path, release_model_ids: Iterable[str], per_run_vars: Iterable[str]
) -> dict[str, str]:
    """{part: version or digest} of what builds the release (see the module's docstring);
    `per_run_vars`: the vars the platform passes per run, left out."""
    project_file = yaml.safe_load((project_dir / DBT_PROJECT_FILE).read_text()) or {}
    skipped = set(per_run_vars)
    project_vars = project_file.get("vars") or {}
    parts = {f"var '{name}'": _digest(value) for name, value in project_vars.items() if name not in skipped}
    adapter = manifest["metadata"].get("adapter_type", "")
    for distribution in (DBT_CORE_DISTRIBUTION, DBT_ADAPTERS_DISTRIBUTION, f"dbt-{adapter}"):
        parts[distribution] = _installed_version(distribution)
    packages_dir = project_dir / project_file.get("packages-install-path", DEFAULT_PACKAGES_INSTALL_PATH)
    for package_file in sorted(packages_dir.glob(f"*/{DBT_PROJECT_FILE}")):
        package = yaml.safe_load(package_file.read_text()) or {}
        parts[f"package '{package.get('name', package_file.parent.name)}'"] = str(package.get("version", ABSENT))
    code_versions = CodeVersions(manifest)
    for unique_id in sorted(release_model_ids):
        parts.update(code_versions.node_inputs(unique_id))
    return dict(sorted(parts.items()))


def fingerprint_differences(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """One line per part that differs, e.g. "dbt-core 1.11.2 -> 1.11.3"."""
    return [
        f"{part} {recorded.get(part, ABSENT)} -> {current.get(part, ABSENT)}"
        for part in sorted(set(recorded) | set(current))
        if recorded.get(part) != current.get(part)
    ]
