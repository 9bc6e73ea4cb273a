"""The one bounded wait of the test suites and the benchmark: fast (a real daemon) and kind (a real
cluster, through k8s_tests/harness/cluster.py's `wait_until`, which only adds the Kubernetes API's
errors to what counts as "not yet")."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_until(
    description: str,
    probe: Callable[[], tuple[bool, T]],
    timeout: float,
    interval: float = 2.0,
    tolerate: tuple[type[Exception], ...] = (),
) -> T:
    """Polls `probe` (returning (done, state)) until done and returns the state; on timeout, raises
    with the last state seen. An exception in `tolerate` counts as not done yet (e.g. an API that
    is briefly unreachable), and is that last state."""
    deadline = time.monotonic() + timeout
    state: Any = None
    while True:
        try:
            done, state = probe()
        except tolerate as error:
            done, state = False, f"{type(error).__name__}: {error}"
        if done:
            return state
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {description}; last state: {state}")
        time.sleep(interval)
