"""The Dagster UI in a real browser: Debian's Chromium, headless, driven by Selenium through Debian's
chromedriver (hack/install-chromium.sh installs both), against the webserver's port-forward.

Selenium is handed both binaries' paths, so Selenium Manager never runs (it would download a
browser and a driver). The browser resolves no host name (`--host-resolver-rules`) and its
background services are off: it reaches the port-forward on 127.0.0.1 and nothing else.

Each page check waits until the page shows what it must (every wait bounded, naming what it waited
for and the last thing it saw), saves a screenshot under artifacts/ui/, and returns its path. A
check that times out saves the screenshot of what the page showed instead, `<name>-timeout.png`.
What the pages must show is read from the deployment by the caller (GraphQL, the chart's values),
never from the example project. The selectors are those of the UI of Dagster 1.13
(dagster_webserver/webapp): CSS-module class names keep their source name as a prefix, so they are
matched by prefix (`[class*=...]`), never by their hash.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from k8s_tests.harness.cluster import ARTIFACTS_DIR
from tests.waiting import WaitTimeout, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = "run hack/install-chromium.sh (Debian's chromium and chromium-driver)"
UI_ARTIFACTS_DIR = ARTIFACTS_DIR / "ui"
WINDOW_WIDTH, WINDOW_HEIGHT = 1280, 800
# A page's GraphQL answers on a busy 2-core node (the asset graph lays out every asset first).
PAGE_TIMEOUT_SECONDS = 120
# Chromium starting under chromedriver, and one page load.
DRIVER_TIMEOUT_SECONDS = 60
POLL_SECONDS = 1.0
# A page not done after this long is looked at: the UI draws its frame (navigation) at once,
# before any data, so a page still without text did not start; and one whose requests were
# refused lost the webserver (seen in CI after the whole cluster suite: the port-forward exited
# while the pools page loaded, which then said "Loading" or stayed white for 120 s). Either is
# loaded again, then opened in a new Chromium; the console errors are kept to say why.
STUCK_PAGE_SECONDS = 30
# Console messages of a request that did not reach the webserver.
NETWORK_ERRORS = ("ERR_CONNECTION_REFUSED", "ERR_CONNECTION_RESET", "ERR_EMPTY_RESPONSE", "Failed to fetch")
# Once a page shows what it must, the time its transitions take to end (the run page's gantt chart
# colours its steps after its data is in), so a screenshot shows the page at rest.
SETTLE_SECONDS = 2.0
# How many of a timed-out page's console errors its WaitTimeout quotes.
CONSOLE_ENTRIES_SHOWN = 10
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",  # the suites run as root, where Chromium's sandbox refuses to start
    "--disable-dev-shm-usage",
    "--disable-gpu",
    f"--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}",
    "--hide-scrollbars",
    # Only 127.0.0.1 (an IP literal, never resolved) can be reached; no background traffic.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--metrics-recording-only",
)
# The UI's run page: its sidebar section listing a run group (gantt/RunGroupPanel.tsx).
RUN_GROUP_TITLE = re.compile(r"Re-executions \((\d+)\)")
RUN_GROUP_LINKS = "a[class*='RunGroupPanel_runGroupRun']"
RUN_GROUP_SELECTED = "RunGroupPanel_runGroupRunSelected"
# The asset graph's group boxes, collapsed or expanded (asset-graph/*GroupNode.tsx): the group's
# full name is the data-tooltip of its title.
GROUP_TITLES = (
    "[class*='CollapsedGroupNode_collapsedGroupNodeBox'] [data-tooltip],"
    " [class*='ExpandedGroupNode_groupNodeHeaderBox'] [data-tooltip]"
)
# The pools table (instance/VirtualizedInstanceConcurrencyTable.tsx): a link to the pool, its limit.
POOL_ROWS = "[class*='VirtualizedInstanceConcurrencyTable_rowGrid']"

T = TypeVar("T")


class BrowserMissing(Exception):
    pass


@dataclass
class DagsterUi:
    """A headless Chromium on the Dagster webserver at `base_url()` (asked before each page: the
    port-forward behind it is restarted when its pod went away)."""

    start_driver: Callable[[], webdriver.Chrome]
    base_url: Callable[[], str]
    screenshots: Path = UI_ARTIFACTS_DIR
    driver: webdriver.Chrome = field(init=False)

    def __post_init__(self) -> None:
        self.driver = self.start_driver()

    def restart(self) -> None:
        """A new Chromium (a new profile: no cache, no state of the pages before) on the same URL."""
        url = self.driver.current_url
        with suppress(WebDriverException):  # a Chromium whose tab crashed may not quit cleanly
            self.driver.quit()
        self.driver = self.start_driver()
        self.driver.get(url)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url().rstrip("/") + path)

    def screenshot(self, name: str) -> Path:
        time.sleep(SETTLE_SECONDS)
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{name}.png"
        if not self.driver.save_screenshot(str(path)):
            raise RuntimeError(f"Chromium could not save the screenshot {path}")
        return path

    def wait(self, name: str, description: str, probe: Callable[[], tuple[bool, T]]) -> T:
        """tests.waiting.wait_until on the page; a browser error (an element replaced while read)
        means "not yet". A page stuck for STUCK_PAGE_SECONDS, blank or having lost the webserver,
        is loaded again (through a port-forward started again if it had exited), the next time in
        a new Chromium. On timeout, saves what the page showed as `<name>-timeout.png` and says
        what the page's console held and what was tried."""
        checked_at = time.monotonic()
        tried: list[str] = []

        def probe_recovering_a_stuck_page() -> tuple[bool, T | str]:
            nonlocal checked_at
            try:
                done, state = probe()
                blank = not done and not self.driver.execute_script(
                    "return document.body ? document.body.innerText.trim() : ''"
                )
            except WebDriverException as error:  # "not yet"; the tab itself gone if it lasts
                done, state, blank = False, f"{type(error).__name__}: {error.msg}", True
            if not done and time.monotonic() - checked_at > STUCK_PAGE_SECONDS:
                self.base_url()  # starts the port-forward again if it has exited
                errors = self.console_errors()
                lost = [error for error in errors if any(sign in error for sign in NETWORK_ERRORS)]
                if blank or lost:
                    what = "blank" if blank else f"lost the webserver ({lost[-1][:200]})"
                    if len(tried) % 2 == 0:
                        tried.append(f"{what}: reloaded (console: {errors})")
                        self.driver.refresh()
                    else:
                        tried.append(f"{what}: opened in a new Chromium (console: {errors})")
                        self.restart()
                    print(f"[ui] {self.driver.current_url} after {STUCK_PAGE_SECONDS}s: {tried[-1][:300]}")
                checked_at = time.monotonic()
            return done, state

        try:
            return wait_until(
                description,
                probe_recovering_a_stuck_page,
                PAGE_TIMEOUT_SECONDS,
                POLL_SECONDS,
                tolerate=(WebDriverException,),  # from a reload or a new Chromium
            )
        except WaitTimeout as error:
            shot = self.screenshot(f"{name}-timeout")
            raise WaitTimeout(
                f"{error} (the page then: {shot}, {self.driver.current_url}; its console: {self.console_errors()};"
                f" recoveries: {tried or 'none'})"
            ) from error

    def console_errors(self) -> list[str]:
        """The page's console errors and warnings since last asked (a script that failed to load or
        threw leaves a white page and says why only here), the last CONSOLE_ENTRIES_SHOWN of them."""
        try:
            log = self.driver.get_log("browser")
        except WebDriverException as error:
            return [f"unreadable: {type(error).__name__}: {error.msg}"]
        entries = [f"{entry['level']}: {entry['message']}" for entry in log if entry["level"] in ("SEVERE", "WARNING")]
        return entries[-CONSOLE_ENTRIES_SHOWN:]

    # --- page checks ------------------------------------------------------------------------------

    def check_asset_graph(self, groups: set[str], name: str = "asset-graph") -> Path:
        """The global asset graph (/asset-groups) shows a box for each of `groups`."""
        self.open("/asset-groups")

        def probe() -> tuple[bool, object]:
            shown = {
                element.get_attribute("data-tooltip")
                for element in self.driver.find_elements(By.CSS_SELECTOR, GROUP_TITLES)
                if element.is_displayed()
            }
            missing = groups - shown
            return not missing, f"groups shown: {sorted(shown)}; missing: {sorted(missing)}"

        self.wait(name, f"the asset graph to show the groups {sorted(groups)}", probe)
        return self.screenshot(name)

    def check_run_group(self, run_ids: list[str], name: str = "release-run-group") -> Path:
        """The page of the last run of a run group (/runs/<id>) lists the whole group as its
        re-executions: each run by its short id, oldest first, the first marked ROOT, that last
        run selected."""
        self.open(f"/runs/{run_ids[-1]}")

        def probe() -> tuple[bool, object]:
            title = RUN_GROUP_TITLE.search(self.driver.find_element(By.TAG_NAME, "body").text)
            listed = [
                (
                    link.get_attribute("href").rsplit("/runs/", 1)[-1],
                    " ".join(link.text.split()),
                    RUN_GROUP_SELECTED in (link.get_attribute("class") or ""),
                )
                for link in self.driver.find_elements(By.CSS_SELECTOR, RUN_GROUP_LINKS)
            ]
            done = (
                title is not None
                and int(title.group(1)) == len(run_ids) - 1
                and [run_id for run_id, _, _ in listed] == run_ids
                and all(run_id.split("-")[0] in text for run_id, text, _ in listed)
                and "ROOT" in listed[0][1]
                and [run_id for run_id, _, selected in listed if selected] == [run_ids[-1]]
            )
            return done, f"section {title.group(0) if title else None!r}; runs listed (id, text, selected): {listed}"

        self.wait(name, f"the run page of {run_ids[-1]} to list its run group {run_ids}", probe)
        return self.screenshot(name)

    def check_pools(self, limits: dict[str, int], name: str = "pools") -> Path:
        """The pools page (/deployment/concurrency) lists each pool of `limits` with its limit."""
        self.open("/deployment/concurrency")

        def probe() -> tuple[bool, object]:
            shown: dict[str, str] = {}
            for row in self.driver.find_elements(By.CSS_SELECTOR, POOL_ROWS):
                link = row.find_element(By.CSS_SELECTOR, "a")
                pool = link.text.strip()
                if link.get_attribute("href").endswith(f"/deployment/concurrency/{quote(pool, safe='')}"):
                    shown[pool] = row.text.strip().removeprefix(pool).strip()
            wrong = {pool: shown.get(pool) for pool, limit in limits.items() if shown.get(pool) != str(limit)}
            return not wrong, f"pools shown with their limits: {shown}; expected {limits}"

        self.wait(name, f"the pools page to list the pools with their limits {limits}", probe)
        return self.screenshot(name)


@contextmanager
def dagster_ui(base_url: Callable[[], str], screenshots: Path = UI_ARTIFACTS_DIR) -> Iterator[DagsterUi]:
    """A headless Chromium for the UI at `base_url()`, quit at the end. BrowserMissing, saying how
    to install it, when Debian's chromium or chromedriver is not there."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            raise BrowserMissing(f"{binary} not found: {INSTALL_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # for DagsterUi.console_errors

    def start_driver() -> webdriver.Chrome:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
        driver.set_page_load_timeout(DRIVER_TIMEOUT_SECONDS)
        # --window-size counts the (invisible) browser frame: grow the window by it, so the page,
        # and every screenshot, is WINDOW_WIDTH x WINDOW_HEIGHT.
        inner_width, inner_height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        driver.set_window_size(2 * WINDOW_WIDTH - inner_width, 2 * WINDOW_HEIGHT - inner_height)
        return driver

    ui = DagsterUi(start_driver=start_driver, base_url=base_url, screenshots=screenshots)
    try:
        yield ui
    finally:
        ui.driver.quit()
