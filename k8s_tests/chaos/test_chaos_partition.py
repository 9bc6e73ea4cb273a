"""Chaos scenario of a network partition (issue 12, part 3): every packet between the run pod and
PostgreSQL (Dagster's storage and the warehouse) is dropped, without a reset, while dbt waits on a
query, for longer than the chart's client timeouts (postgresqlClient: libpq keepalives and
tcp_user_timeout), then let through again. Without those timeouts libpq waits on the kernel's (two
hours before the first keepalive) and the release hangs with no failure for anyone to retry.
The server's side of the same: the sessions the cut-off pod leaves behind end in minutes
(postgresql.settings), not after the kernel's two hours holding their locks and connections.
"""

from __future__ import annotations

import re
import time

from k8s_tests.chaos.release_checks import (
    PARENT_FAILS_TIMEOUT_SECONDS,
    Reference,
    assert_group_exactly_once,
    assert_reader_saw_one_release_at_a_time,
    launch_and_reach_slow_model,
    wait_one_retry_finished,
)
from k8s_tests.harness.cluster import wait_until
from k8s_tests.harness.deployment import Deployment, chart_values
from k8s_tests.harness.faults import only_component_pod, partitioned, running_run_pod
from k8s_tests.harness.release import GreenReader, failure_messages, wait_run_finished
from tests.support import query

# Longer than the chart's defaults let a connection wait on a reply: it is declared dead after
# about 30 s (keepalives after 10 s idle, 3 probes 5 s apart, tcp_user_timeout 30 s).
PARTITION_SECONDS = 60
# The slow model's pre-hook holds dbt's warehouse connection in pg_sleep for this long: the cut
# lands while dbt waits on the server.
PAUSE_SECONDS = 120
STEP_FAILURE_EVENTS = {"ExecutionStepFailureEvent"}
# dbt's line for the model whose query the partition cut: "... ERROR creating ... [ERROR in 30.78s]".
MODEL_ERROR_AFTER = re.compile(r"ERROR creating .*ERROR.* in ([0-9.]+)s")
# The embedded PostgreSQL's defaults (postgresql.settings) end a session of the cut-off pod (gone
# once its run failed) when what it sent stays unacknowledged for tcp_user_timeout, or when it is
# silent through the keepalives (idle, then count probes interval apart). The slow model's session
# sends its reply only when pg_sleep ends, up to PAUSE_SECONDS after the cut (CI saw 242 s with the
# cut early in the sleep; 76 s with it late). PostgreSQL's own defaults leave such a session (e.g.
# "idle in transaction" after the pg_sleep) to the kernel's 2 hours.
_SERVER = chart_values()["postgresql"]["settings"]
SESSION_DEATH_SECONDS = max(
    int(_SERVER["tcp_user_timeout"]) / 1000,
    int(_SERVER["tcp_keepalives_idle"])
    + int(_SERVER["tcp_keepalives_count"]) * int(_SERVER["tcp_keepalives_interval"]),
)
# A minute for retransmission back-off and the polls.
SESSIONS_END_TIMEOUT_SECONDS = PAUSE_SECONDS + SESSION_DEATH_SECONDS + 60


def test_run_pod_partitioned_from_postgresql_fails_in_bounded_time_and_is_retried(
    chaos_deployment: Deployment, reference: Reference, green_reader: GreenReader
) -> None:
    api = chaos_deployment.api
    parent_id = launch_and_reach_slow_model(chaos_deployment, pause_seconds=PAUSE_SECONDS)
    pod = running_run_pod(chaos_deployment, parent_id)
    postgresql = only_component_pod(chaos_deployment, "postgresql")
    cut_wall = time.time()
    with partitioned(chaos_deployment, pod, postgresql) as cut_at:
        time.sleep(PARTITION_SECONDS)
    healed = time.monotonic() - cut_at

    parent = wait_run_finished(api, parent_id, PARENT_FAILS_TIMEOUT_SECONDS, "the partitioned parent run")
    assert parent.status == "FAILURE", parent.status
    failures = [e for e in api.events(parent_id) if e["__typename"] in STEP_FAILURE_EVENTS]
    assert failures, f"the parent failed without a step failure:\n{failure_messages(api, parent_id)}"
    # Recorded once Dagster's storage is reachable again: the step's own writes wait out the cut.
    recorded = int(failures[0]["timestamp"]) / 1000 - cut_wall
    messages = failure_messages(api, parent_id)
    # libpq's timeout, which fires only while packets go unanswered: the cut was detected, not healed.
    assert "could not receive data from server: connection timed out" in messages.lower(), messages
    model_error = MODEL_ERROR_AFTER.search(messages)
    assert model_error, messages
    # The model's query began before the cut, so the cut was detected sooner than this.
    detected_within = float(model_error.group(1))
    assert detected_within < PARTITION_SECONDS, messages
    assert parent.tags.get("dagster-dbt-k8s/lost_warehouse_connection") == "true", parent.tags
    sessions_ended = wait_sessions_ended(chaos_deployment, pod.status.pod_ip, cut_wall)

    group = wait_one_retry_finished(api, parent_id)
    green_reader.stop()
    retry = group[-1]
    print(
        f"\n[partition run pod <-> PostgreSQL for {healed:.0f}s] cut -> dbt's query failed: under "
        f"{detected_within:.1f}s; cut -> step failure recorded: {recorded:.1f}s; "
        f"cut -> parent FAILURE: {parent.end_time - cut_wall:.1f}s; "
        f"cut -> the server ended the pod's last session: {sessions_ended - cut_wall:.0f}s; "
        f"cut -> group SUCCESS: {retry.end_time - cut_wall:.1f}s; "
        f"parent failure_reason={parent.tags.get('dagster/failure_reason')}, "
        f"lost connection tag={parent.tags.get('dagster-dbt-k8s/lost_warehouse_connection')}; "
        f"green reader: {green_reader.summary()}"
    )
    assert_group_exactly_once(chaos_deployment, reference, group)
    assert_reader_saw_one_release_at_a_time(green_reader, parent_id)


def wait_sessions_ended(deployment: Deployment, pod_ip: str, cut_wall: float) -> float:
    """Waits until PostgreSQL has no session of the pod at `pod_ip` begun before the cut (its IP may
    go to a pod started since); returns the time (time.time) it saw none."""

    def ended() -> tuple[bool, object]:
        # As the superuser: the warehouse role sees no other role's client_addr (the run's Dagster sessions).
        sessions = query(
            deployment.admin,
            "select pid, datname, state, backend_start, state_change, left(query, 100) from pg_stat_activity"
            " where client_addr = %s::inet and backend_start < to_timestamp(%s)",
            (pod_ip, cut_wall),
        )
        return not sessions, sessions

    wait_until(
        f"PostgreSQL to end the sessions of the cut-off pod {pod_ip} within {SESSIONS_END_TIMEOUT_SECONDS}s of the cut",
        ended,
        max(cut_wall + SESSIONS_END_TIMEOUT_SECONDS - time.time(), 0),
        interval=5,
    )
    return time.time()
