"""The kind cluster's NetworkPolicy enforcer (k8s_tests/cluster/images/network-policy) has Go unit
tests of its rule translation (rules_test.go): they run here, in the fast suite, so a change to the
rules fails before a cluster is built. Go is a prerequisite of the project (the kind node image and
the enforcer are built with it); its absence fails with how to fix it, never skips."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ENFORCER_DIR = Path(__file__).resolve().parents[1] / "k8s_tests" / "cluster" / "images" / "network-policy"
# Cold: client-go's modules from the Go module proxy, then a compile on 2 cores.
GO_TEST_TIMEOUT_SECONDS = 900


def test_enforcer_rules_go_unit_tests_pass():
    go = shutil.which("go")
    assert go, "go is not on PATH: install Go 1.24 or newer (e.g. /usr/local/go/bin), as for `make cluster`"
    # The build flags of the enforcer's image (build-image.sh): the packages compiled for one,
    # client-go and its dependencies, serve the other from Go's build cache (CI builds both at once).
    result = subprocess.run(
        [go, "test", "-count=1", "-trimpath", "-v", "./..."],
        cwd=ENFORCER_DIR,
        env={**os.environ, "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=GO_TEST_TIMEOUT_SECONDS,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    passed = output.count("--- PASS")
    assert passed >= 1 and "--- FAIL" not in output, output[-4000:]
