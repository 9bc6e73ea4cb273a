"""Options and fixtures of the suites that run on a kind cluster (`make cluster-test`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from k8s_tests.cluster_fixtures import (  # noqa: F401  (fixtures, found by name)
    acme_image,
    batch_v1,
    cluster_artifacts_on_failure,
    core_v1,
    k8s_client,
    kind_cluster,
    namespace,
    namespace_artifacts_on_setup_failure,
    plain_image,
    probe_image,
    project_image,
)

pytest_plugins = ["k8s_tests.chaos.fixtures"]  # the chaos suite's deployment fixtures (k8s_tests/chaos/)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "full_suite: a cluster scenario that adds no fault kind to those CI runs (`make k8s-test`); "
        "`make k8s-test-full` runs it too",
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kind cluster")
    group.addoption(
        "--kind-cluster",
        default=None,
        metavar="NAME",
        help="run against this existing kind cluster instead of creating one with k8s_tests/cluster/up.sh",
    )
    group.addoption(
        "--keep-cluster",
        action="store_true",
        help="keep the cluster (and test namespaces) the suite created, for debugging",
    )
    group.addoption(
        "--fail-on-skip",
        action="store_true",
        help="report a skipped test as failed (CI: no cluster scenario may be skipped)",
    )
    group.addoption(
        "--cluster-layout",
        default="single",
        choices=["single", "multi"],
        help="layout of a cluster the suite creates: one node, or a control plane and two workers",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keeps each phase's report on the item, so fixtures can tell whether the test failed; with
    --fail-on-skip, turns a skip into a failure."""
    report = yield
    if report.skipped and item.config.getoption("--fail-on-skip") and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, and --fail-on-skip makes a skip a failure: {report.longrepr}"
    setattr(item, f"rep_{report.when}", report)
    return report
