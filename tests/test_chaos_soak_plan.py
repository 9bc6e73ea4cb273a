"""The chaos soak's plan and report (k8s_tests/chaos/soak.py), without a cluster: a seed gives the
same rounds every time, every fault kind comes once in each len(FAULTS) rounds, and the table
counts a round with a broken invariant as not survived."""

from __future__ import annotations

from k8s_tests.chaos.soak import FAULTS, Round, plan, table


def names(seed: int, rounds: int) -> list[tuple[str, float]]:
    return [(fault.name, fraction) for fault, fraction in plan(seed, rounds)]


def test_a_seed_gives_the_same_rounds_and_another_seed_others():
    assert names(7, 30) == names(7, 30)
    assert names(7, 30) != names(8, 30)


def test_every_fault_kind_once_in_each_deck_at_moments_within_the_release():
    rounds = plan(1, 3 * len(FAULTS) + 2)
    for deck in range(3):
        dealt = rounds[deck * len(FAULTS) : (deck + 1) * len(FAULTS)]
        assert sorted(fault.name for fault, _ in dealt) == sorted(fault.name for fault in FAULTS)
    assert all(0 <= fraction < 1 for _, fraction in rounds)
    assert len({fault.name for fault in FAULTS}) == len(FAULTS)


def test_table_counts_a_round_with_a_violation_as_not_survived():
    ok = Round(number=1, fault="eviction", fraction=0.5, moment=40.2, hit="STARTED 5/23", runs=2)
    broken = Round(number=2, fault="dbt-oom", fraction=None, runs=1, violations=["green reader: mix"])
    text = table(3, [ok, broken])
    assert "faults survived / injected = 1/2" in text
    rows = [line for line in text.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert rows[0].startswith("| 1 | eviction | 40 (0.50) | STARTED 5/23 |") and rows[0].endswith("| 2 | ok |")
    assert "its pre-hook" in rows[1] and "FAILED: green reader: mix" in rows[1]
