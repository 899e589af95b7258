"""The live page of a real run (``gpuchaos run --serve``) in a real headless browser.

A short node-loss run is started with ``--serve``; its printed URL is opened in Debian's
chromium through chromedriver (Selenium). While the run goes, the page must poll, draw the
report's plots, show them change (the request count grows, a plot's SVG differs between
polls), list the replicas and their logs, and log nothing to the console; then the run is
ended with Ctrl-C (it still writes its reports), not waited for. Skips without
chromium, chromedriver or selenium locally; fails without them in CI (``CI`` set), where
``.ci/run`` installs them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, gpuchaos_run_cmd
from tests.support.browser import CHROMIUM_FLAGS
from tests.support.procs import running, stop

#: A generous ceiling for a busy machine; every wait also ends when the run exits.
RUN_CEILING_S = 300.0
URL_LINE = re.compile(r"live page: (http://127\.0\.0\.1:\d+/\?token=[\w-]+)")


def _need(what: str, found: object, install: str) -> None:
    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing in CI: .ci/run must install it")
        pytest.skip(f"{what} not installed ({install})")


def _browser(tmp_path: Path) -> Any:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    _need("chromium", chromium, "apt-get install -y chromium")
    _need("chromedriver", driver_path, "apt-get install -y chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        if flag.startswith("--host-resolver-rules"):  # the page is on loopback; nothing else
            flag = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
        if not flag.startswith(("--enable-logging", "--v=")):
            options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.add_argument("--window-size=1200,2400")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver_path)
    return webdriver.Chrome(options=options, service=service)


def _wait(proc: Any, cond: Any, what: str, log: Path) -> Any:
    """Poll ``cond`` until it is truthy; fail when the run exited or the ceiling passed."""
    deadline = time.monotonic() + RUN_CEILING_S
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before {what}:\n{log.read_text()}")
        time.sleep(0.25)
    pytest.fail(f"no {what} within {RUN_CEILING_S:.0f} s:\n{log.read_text()[-3000:]}")


def _url(log: Path) -> str | None:
    match = URL_LINE.search(log.read_text(errors="replace")) if log.is_file() else None
    return match.group(1) if match else None


def test_live_page_of_a_real_run_updates_in_chromium(tmp_path: Path) -> None:
    browser = _browser(tmp_path)
    out = tmp_path / "run"
    log = tmp_path / "run.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        with running([*gpuchaos_run_cmd(out), "--serve"], cwd=ROOT, log_path=log, env=env) as proc:
            url = _wait(proc, lambda: _url(log), "the live page's URL", log)
            with urllib.request.urlopen(url.replace("/?", "/api/state?"), timeout=30) as resp:
                state = json.load(resp)
            assert state["replicas"], state  # the platform is up when the URL is printed
            browser.get(url)

            def body(name: str) -> int:
                return int(browser.find_element("tag name", "body").get_attribute(name) or 0)

            def plot(chart: str) -> str:
                found = browser.find_elements("css selector", f"#chart-{chart} svg.plot")
                return str(found[0].get_attribute("outerHTML")) if found else ""

            _wait(proc, lambda: body("data-requests") > 0, "requests on the page", log)
            first_requests, first_plot, first_polls = (
                body("data-requests"),
                plot("throughput"),
                body("data-polls"),
            )
            assert first_plot, browser.page_source[:3000]
            _wait(
                proc,
                lambda: body("data-requests") > first_requests and plot("throughput") != first_plot,
                "the request count and the throughput plot changing",
                log,
            )
            assert body("data-polls") > first_polls
            drawn = body("data-plots-rendered")
            charts = browser.find_elements("css selector", "#charts svg.plot")
            ids = {c.get_attribute("id") for c in charts}
            assert {"latency", "ttft", "errors", "throughput", "replicas", "queue"} <= ids, ids
            assert "cpu" in ids or "gpu_util" in ids, ids
            assert drawn >= 6, drawn  # each with a drawn line, measured by the browser
            rows = browser.find_elements("css selector", "#replicas tr")
            assert len(rows) - 1 == len(state["replicas"]), browser.page_source[:3000]
            logs = browser.find_elements("css selector", "#logs pre")
            assert logs and any(p.text.strip() for p in logs)
            console = browser.get_log("browser")
            assert console == [], console  # no error, no failed fetch, nothing
            # seen what the page must show: end the run now (Ctrl-C), not after its load
            proc.send_signal(signal.SIGINT)
            code = stop(proc, sig=None, grace_s=RUN_CEILING_S)
        assert code == 2, log.read_text()[-3000:]  # interrupted: faults reverted, reports out
        assert (out / "report.html").is_file()
        assert f"live page: {url}" in (out / "harness.log").read_text()
    finally:
        browser.quit()
