"""Fixtures the chaos scenario modules share (the deployment itself is in fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from k8s_tests.chaos.release_checks import Reference, reference_release
from k8s_tests.harness.deployment import Deployment
from k8s_tests.harness.release import GreenReader


@pytest.fixture(scope="session")
def reference(chaos_deployment: Deployment) -> Reference:
    """One uninterrupted release, the expected content of green after every faulted release."""
    return reference_release(chaos_deployment)


@pytest.fixture
def green_reader(chaos_deployment: Deployment) -> Iterator[GreenReader]:
    """Scenario 10: a reader of green polling through the whole test."""
    forward = chaos_deployment.own_postgresql_forward()
    reader = GreenReader(lambda: chaos_deployment.warehouse_through(forward), forward.stop)
    reader.start()
    yield reader
    reader.stop()
    forward.stop()
