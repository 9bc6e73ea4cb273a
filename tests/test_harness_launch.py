"""The cluster harness launches a run once even when the webserver's answer is lost (issue 14: a
stalled webserver was sent the same launchRun again after the client's read timeout).

A real dagster-webserver on the test's instance, reached through a proxy that loses the answer of
the first launchRun as a port-forward or a stalled node does: the connection closed after the
webserver answered, or no answer before the client's timeout while the webserver has not yet
created the run. Runs stay queued (no daemon): only their number is checked.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import requests

from k8s_tests.harness import dagster_api
from k8s_tests.harness.dagster_api import LAUNCH_ID_TAG, DagsterApi
from k8s_tests.harness.deployment import free_port
from tests.waiting import wait_until

LOCATION = "harness_launch"
JOB = "noop_job"
WEBSERVER_START_TIMEOUT_SECONDS = 120
CLIENT_TIMEOUT_SECONDS = 2
# The first launch reaches the webserver this long after the client gave up on its answer.
LATE_LAUNCH_SECONDS = 2 * CLIENT_TIMEOUT_SECONDS
JOBS_FILE = f"""
import dagster as dg

@dg.op
def noop():
    pass

@dg.job
def {JOB}():
    noop()

defs = dg.Definitions(jobs=[{JOB}])
"""


@pytest.fixture
def webserver_url(instance: dg.DagsterInstance, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "jobs.py").write_text(JOBS_FILE)
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - python_file:\n      relative_path: jobs.py\n      location_name: {LOCATION}\n"
    )
    port = free_port()
    log = (tmp_path / "webserver.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        api = DagsterApi(lambda: url, LOCATION)
        wait_until(
            f"dagster-webserver on {url} to load {LOCATION} (log: {log.name})",
            lambda: (api.location_status() == "RepositoryLocation", "not loaded"),
            WEBSERVER_START_TIMEOUT_SECONDS,
            1,
            tolerate=(requests.RequestException,),
        )
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@dataclass
class LosingProxy:
    """An HTTP proxy to `upstream` that loses the answer of the first launchRun: `late` forwards
    it only after the client has timed out, else it forwards it and closes the connection."""

    upstream: str
    late: bool
    launches_forwarded: int = 0

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                first_launch = b"launchRun" in body and proxy.launches_forwarded == 0
                if b"launchRun" in body:
                    proxy.launches_forwarded += 1
                if first_launch and proxy.late:
                    time.sleep(LATE_LAUNCH_SECONDS)
                answer = requests.post(
                    proxy.upstream + self.path, data=body, headers={"Content-Type": "application/json"}, timeout=60
                )
                if first_launch:
                    self.close_connection = True  # the answer is lost
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_port}"


@pytest.mark.parametrize("late", [False, True], ids=["connection-closed", "launched-after-client-timeout"])
def test_launch_whose_answer_is_lost_is_done_once(
    instance: dg.DagsterInstance, webserver_url: str, late: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dagster_api, "REQUEST_TIMEOUT_SECONDS", CLIENT_TIMEOUT_SECONDS)
    losing = LosingProxy(webserver_url, late=late)
    server, proxy_url = losing.serve()
    try:
        run_id = DagsterApi(lambda: proxy_url, LOCATION).launch_run(JOB, tags={"purpose": "harness-test"})
    finally:
        server.shutdown()
    runs = instance.get_runs()
    assert [run.run_id for run in runs] == [run_id], f"launched {len(runs)} runs for one launch: {runs}"
    assert runs[0].tags.get("purpose") == "harness-test" and runs[0].tags.get(LAUNCH_ID_TAG)
    assert losing.launches_forwarded == 1
