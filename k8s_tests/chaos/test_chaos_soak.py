"""The chaos soak (issue 12, part 4; k8s_tests/chaos/soak.py): faults of every kind at random
moments of a release, the suite's invariants checked after each round.

`make chaos-soak SEED=... ROUNDS=...` sets SOAK_SEED and SOAK_ROUNDS. Unset, CI's short soak runs:
seed CI_SEED, CI_ROUNDS rounds (an eviction and a SIGKILL at moments no scenario picked).
The table goes to artifacts/soak/ and to the output; the test fails if any round did.
"""

from __future__ import annotations

import os
import time

from k8s_tests.chaos.release_checks import Reference
from k8s_tests.chaos.soak import plan, restore, run_round, table, write_table
from k8s_tests.harness.cluster import ARTIFACTS_DIR
from k8s_tests.harness.deployment import Deployment

CI_SEED = 2
CI_ROUNDS = 2


def test_faults_at_random_moments_keep_every_invariant(chaos_deployment: Deployment, reference: Reference) -> None:
    seed = int(os.environ.get("SOAK_SEED") or CI_SEED)
    rounds_wanted = int(os.environ.get("SOAK_ROUNDS") or CI_ROUNDS)
    assert rounds_wanted > 0, "SOAK_ROUNDS must be at least 1"
    rounds = []
    start = time.monotonic()
    for number, (fault, fraction) in enumerate(plan(seed, rounds_wanted), start=1):
        restore(chaos_deployment)
        began = time.monotonic()
        result = run_round(chaos_deployment, reference, number, fault, fraction)
        rounds.append(result)
        path = write_table(ARTIFACTS_DIR / "soak", seed, rounds)
        print(
            f"\n[soak {number}/{rounds_wanted}] {fault.name} at {result.moment or 0:.0f}s: "
            f"{'ok' if result.survived else 'FAILED'} in {time.monotonic() - began:.0f}s "
            f"(soak at {time.monotonic() - start:.0f}s; table {path})"
        )
    restore(chaos_deployment)
    print("\n" + table(seed, rounds))
    failed = [r for r in rounds if not r.survived]
    assert not failed, "\n".join(f"round {r.number} ({r.fault}): {r.violations}" for r in failed)
