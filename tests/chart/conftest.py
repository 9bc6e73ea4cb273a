"""Fixtures of the chart's render tests: helm (built by hack/install-helm.sh on a fresh machine)
and a cached `helm template`."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from chart_render import REPO_ROOT, Rendered, cache_bin, render_cached


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of helm at HELM_VERSION (versions.env)."""
    script = REPO_ROOT / "hack" / "install-helm.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"{script} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return str(cache_bin() / "helm")


@pytest.fixture(scope="session")
def render(helm):
    """render(values_file=None, set_values=None) -> Rendered, cached per arguments."""

    def _render(values_file: Path | None = None, set_values: Mapping[str, str] | None = None) -> Rendered:
        files = (values_file,) if values_file else ()
        return render_cached(helm, files, tuple(sorted((set_values or {}).items())))

    return _render
