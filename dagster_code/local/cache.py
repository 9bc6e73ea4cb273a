"""Where the project caches what it downloads and builds, outside the repository. The same rule
as CACHE_DIR in hack/lib.sh, which the shell scripts use."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    explicit = os.environ.get("DAGSTER_DBT_K8S_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dagster-dbt-k8s"
