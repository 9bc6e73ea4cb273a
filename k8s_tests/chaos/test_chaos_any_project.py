"""Issue 10 on kind: a dbt project other than the example (tests/dbt_projects/acme: its own image,
no Python, configured by dagster.yml and dbt meta only) gets the same recovery. Its release's run
pod is evicted mid-build; the FROM_ASSET_FAILURE retry builds exactly what the parent had not, every
asset once, and green ends equal to an uninterrupted release.
"""

from __future__ import annotations

import time

from k8s_tests.chaos.release_checks import (
    PARENT_FAILS_TIMEOUT_SECONDS,
    assert_group_exactly_once,
    launch_and_reach_slow_model,
    reference_release,
    wait_one_retry_finished,
)
from k8s_tests.harness.acme import ACME_RELEASE
from k8s_tests.harness.cluster import read_versions
from k8s_tests.harness.deployment import Deployment
from k8s_tests.harness.faults import evict, running_run_pod
from k8s_tests.harness.release import wait_run_finished


def test_eviction_of_another_projects_release_retried_from_asset_failure(acme_deployment: Deployment) -> None:
    api = acme_deployment.api
    reference = reference_release(acme_deployment, ACME_RELEASE)
    assert ACME_RELEASE.paused_model in reference.job_assets, sorted(reference.job_assets)

    parent_id = launch_and_reach_slow_model(acme_deployment, ACME_RELEASE)
    pod = running_run_pod(acme_deployment, parent_id)
    # The run runs the project's own image, not the example's.
    assert [c.image for c in pod.spec.containers] == [read_versions()["ACME_PROJECT_IMAGE"]]
    fault_at = time.time()
    evict(acme_deployment, pod)

    parent = wait_run_finished(api, parent_id, PARENT_FAILS_TIMEOUT_SECONDS, "the evicted parent run")
    assert parent.status == "FAILURE"
    assert parent.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION", parent.tags
    group = wait_one_retry_finished(api, parent_id)
    assert group[0].tags.get("dagster/will_retry") == "true", group[0].tags
    retry = group[-1]
    print(
        f"\n[acme eviction] fault -> parent failed: {parent.end_time - fault_at:.1f}s; "
        f"fault -> retry started: {retry.start_time - fault_at:.1f}s; "
        f"fault -> group SUCCESS: {retry.end_time - fault_at:.1f}s; retry selection: {sorted(retry.asset_selection)}"
    )
    assert_group_exactly_once(acme_deployment, reference, group)
