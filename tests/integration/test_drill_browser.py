"""A trainee works a real drill in a real browser (headless chromium through chromedriver).

The short drill of :mod:`tests.integration.test_drill` (node-a-0 hung at 12 s) is served with
``--serve``; the page is opened at its printed URL. The scripted trainee only uses the page:
it waits until the replicas table shows node-a-0 not Ready, then submits the panel's forms
(acknowledge; diagnose with the kind and target picked in the lists; restart node-a-0), reads
each answer beside its form, waits for node-a-0 Ready again in the table and declares the
incident resolved. The browser logs nothing to its console, and the debrief scores what the
page did. Skips without chromium, chromedriver or selenium locally; fails in CI.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from harness.drill.view import hidden_words
from tests.integration.conftest import ROOT
from tests.integration.test_drill import TARGET, short_pack
from tests.integration.test_live_page import _browser, _wait
from tests.support.procs import running

URL_LINE = re.compile(r"drill page: (http://127\.0\.0\.1:\d+/\?token=[\w-]+)")


def _url(log: Path) -> str | None:
    match = URL_LINE.search(log.read_text(errors="replace")) if log.is_file() else None
    return match.group(1) if match else None


def _state_of(browser: Any, replica: str) -> str:
    """The replica's row in the page's table, read in one go (the page redraws it)."""
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#replicas tr'))"
        ".map(r => Array.from(r.cells).map(c => c.textContent.trim()))"
    )
    for cells in rows or []:
        if cells and cells[0] == replica:
            return " ".join(cells[1:])
    return ""


def _submit(browser: Any, action: str, **choices: str) -> str:
    """Fill a drill form's fields, submit it, and return the answer shown beside it."""
    from selenium.webdriver.support.ui import Select

    form = browser.find_element("css selector", f'form[data-act="{action}"]')
    for name, value in choices.items():
        Select(form.find_element("name", name)).select_by_value(value)
    form.find_element("css selector", "button").click()
    out = form.find_element("css selector", "[data-act-result]")
    deadline = time.monotonic() + 60
    while not out.text.strip() and time.monotonic() < deadline:
        time.sleep(0.2)
    return str(out.text)


def test_a_trainee_works_the_drill_in_chromium(tmp_path: Path) -> None:
    browser = _browser(tmp_path)
    out, log = tmp_path / "run", tmp_path / "drill.log"
    pack = short_pack(tmp_path / "short.yaml")
    cmd = [sys.executable, "-m", "harness", "drill", str(pack), "--seed", "1", "--serve",
           "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    answers: dict[str, str] = {}
    try:
        with running(cmd, cwd=ROOT, log_path=log, env=env) as proc:
            url = _wait(proc, lambda: _url(log), "the drill page's URL", log)
            browser.get(url)
            _wait(proc, lambda: _state_of(browser, TARGET), f"{TARGET} in the table", log)
            _wait(
                proc,
                lambda: "ready" not in _state_of(browser, TARGET).split(),
                f"{TARGET} shown not Ready",
                log,
            )
            answers["ack"] = _submit(browser, "ack")
            answers["diagnose"] = _submit(browser, "diagnose", kind="replica-hung", target=TARGET)
            answers["restart"] = _submit(browser, "restart", replica=TARGET)
            _wait(
                proc,
                lambda: "ready" in _state_of(browser, TARGET).split(),
                f"{TARGET} Ready again",
                log,
            )
            time.sleep(5)  # the SLOs hold a few seconds before it is declared resolved
            page_text = browser.find_element("tag name", "body").text
            answers["resolve"] = _submit(browser, "resolve")
            console = browser.get_log("browser")
            proc.wait(timeout=240)
        assert proc.returncode == 0, log.read_text()[-3000:]
    finally:
        browser.quit()
    assert answers["ack"] == "acknowledged", answers
    assert answers["diagnose"] == f"diagnosis recorded: replica-hung on {TARGET}", answers
    assert answers["restart"].startswith(f"restarted {TARGET}"), answers
    assert answers["resolve"].startswith("declared resolved"), answers
    assert console == [], console
    low = page_text.lower()
    assert not [w for w in hidden_words() if w in low], page_text[:2000]
    drill = json.loads((out / "drill.json").read_text(encoding="utf-8"))
    score = drill["score"]
    assert drill["ended_by"] == "resolved"
    assert [a["action"] for a in drill["trainee"]] == ["ack", "diagnose", "restart", "resolve"]
    assert 0 < score["time_to_acknowledge_s"] <= score["time_to_diagnose_s"]
    assert score["time_to_diagnose_s"] <= drill["load_end_s"] - drill["injected_at_s"]
    assert score["parts"]["detect"]["points"] > 0 and score["parts"]["diagnose"]["points"] > 0
    assert score["parts"]["mitigate"]["first"] == "restart"
