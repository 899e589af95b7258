"""One short real drill shared by ``tests/integration/test_drill.py`` (over HTTP) and
``tests/integration/test_drill_browser.py`` (in headless chromium): a drill costs about a
minute, and both files check the same drill from two sides.

``gpuchaos drill PACK --seed 1 --facilitator`` runs a hang of node-a-0 (no liveness probe:
it stays hung until someone acts). While it runs, in one thread:

- an HTTP client reads only what the trainee page serves (``/``, ``/api/state``,
  ``/api/log/...``), tries wrong, missing and facilitator-only tokens (which must change
  nothing), sends one refused diagnosis and reads the facilitator's state;
- the trainee works the incident. With chromium (and chromedriver, selenium) the trainee is
  the page in the browser: it waits until the replicas table shows node-a-0 not Ready,
  submits the panel's forms (acknowledge; diagnose; restart node-a-0), waits for Ready in the
  table and declares the incident resolved, which ends the drill. Every answer the page got
  from an action is recorded in the page (a wrapper of ``fetch``), so the HTTP checks see
  them too. Without a browser (skipped locally, a failure in CI) the HTTP client does the
  same actions itself.

The order is fixed: ack, diagnose, the refused diagnosis, restart, resolve. Call
:func:`shared_drill` from a module fixture; the first call runs the drill, later calls (and
a failure) are answered from the cache.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.timeline import read_timeline
from tests.support.procs import running

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACK = ROOT / "experiments" / "drills" / "cpu-basics.yaml"
#: A generous ceiling for a busy machine; every wait also ends when the drill exits.
CEILING_S = 240.0
TARGET = "node-a-0"
FACILITATOR_LINE = re.compile(
    r"facilitator page: http://127\.0\.0\.1:\d+/facilitator/\?token=([\w-]+)"
)
URL_LINE = re.compile(r"drill page: (http://127\.0\.0\.1:\d+/\?token=[\w-]+)")
#: Records the body of every action's answer the page receives (the page calls ``fetch``).
FETCH_RECORDER = """
window.__acts = [];
var original = window.fetch;
window.fetch = function (url, options) {
  return original(url, options).then(function (r) {
    var m = /\\/api\\/act\\/([\\w-]+)/.exec(String(url));
    if (m) r.clone().text().then(function (t) { window.__acts.push([m[1], t]); });
    return r;
  });
};
"""


def short_pack(path: Path) -> Path:
    """The default pack's deployment, 90 s of load, one scenario: node-a-0 hung at 7 s (2 s
    after the warm-up: the drill ends when the trainee declares it resolved, so only the
    time before the fault is waited out)."""
    doc = yaml.safe_load(DEFAULT_PACK.read_text(encoding="utf-8"))
    doc["base"]["load"]["shape"]["duration_s"] = 90
    doc["base"]["warmup_s"] = 5
    doc["scenarios"] = [
        {"fault": "hang_replica", "targets": [TARGET], "window_s": [7, 8], "duration_s": 60}
    ]
    doc["red_herrings"] = []
    doc["verify_s"] = 3
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Drill:
    """What the shared drill left: its folder, exit code, output and every response."""

    out: Path
    returncode: int
    output: str
    conn_mode: int
    trainee_bodies: list[tuple[str, str]] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    facilitator_state: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)
    actions_before_refusals: int = 0
    actions_after_refusals: int = 0
    #: Why the trainee was not the browser (a skip or, in CI, a failure), else None.
    no_browser: BaseException | None = None
    #: With the browser: the answer shown beside each form, its console, the page's text.
    page_answers: dict[str, str] = field(default_factory=dict)
    console: list[Any] = field(default_factory=list)
    page_text: str = ""

    @property
    def drill(self) -> dict[str, Any]:
        return dict(json.loads((self.out / "drill.json").read_text(encoding="utf-8")))


_CACHE: dict[str, Drill | BaseException] = {}


def shared_drill(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    """The one drill of the session (run at the first call; a failure is raised again)."""
    if "drill" not in _CACHE:
        try:
            _CACHE["drill"] = _run_drill(tmp_path_factory)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            _CACHE["drill"] = exc
    got = _CACHE["drill"]
    if isinstance(got, BaseException):
        raise got
    return got


def _wait(proc: Any, cond: Callable[[], Any], what: str, log: Path) -> Any:
    deadline = time.monotonic() + CEILING_S
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"the drill exited ({proc.returncode}) before {what}:\n{log.read_text()}")
        time.sleep(0.3)
    pytest.fail(f"no {what} within {CEILING_S:.0f} s:\n{log.read_text()[-3000:]}")


def _drill_actions(out: Path) -> int:
    path = out / "timeline.jsonl"
    return (
        sum(1 for e in read_timeline(path) if e["kind"] == "drill_action") if path.is_file() else 0
    )


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


def _open_browser(tmp: Path) -> tuple[Any, BaseException | None]:
    """Headless chromium through chromedriver, or (None, why not)."""
    from tests.integration.test_live_page import _browser

    try:
        return _browser(tmp), None
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        return None, exc
    except Exception as exc:  # chromedriver would not start: the browser test fails, not all
        return None, exc


def _script(proc: Any, out: Path, log: Path, d: Drill, browser: Any) -> None:
    """The trainee (in the browser, or over HTTP) and the intruder while the drill runs."""
    conn_path = out / "drill-connection.json"
    _wait(proc, conn_path.is_file, "the connection file", log)
    d.conn_mode = stat.S_IMODE(conn_path.stat().st_mode)
    conn = json.loads(conn_path.read_text(encoding="utf-8"))
    base, token = conn["base"], conn["token"]
    fac_url = _wait(
        proc, lambda: FACILITATOR_LINE.search(log.read_text()), "the facilitator URL", log
    )
    fac_token = fac_url.group(1)
    client = httpx.Client(base_url=base, timeout=30)

    def get(path: str, tok: str | None = token) -> httpx.Response:
        r = client.get(path, params={"token": tok} if tok is not None else None)
        if tok == token and r.status_code == 200:
            d.trainee_bodies.append((path, r.text))
        return r

    def act(name: str, body: dict[str, Any], tok: str | None = token) -> httpx.Response:
        headers = {"X-Gpuchaos-Token": tok} if tok is not None else {}
        r = client.post(f"/api/act/{name}", json=body, headers=headers)
        if tok == token:
            d.trainee_bodies.append((f"act {name}", r.text))
        return r

    def state() -> dict[str, Any]:
        r = get("/api/state")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def replica_state() -> str:
        return next((r["state"] for r in state()["replicas"] if r["id"] == TARGET), "")

    def trainee(name: str, body: dict[str, Any], **choices: str) -> None:
        if browser is not None:
            d.page_answers[name] = _submit(browser, name, **choices)
        else:
            d.answers[name] = act(name, body).json()

    if browser is not None:
        url = _wait(proc, lambda: _url(log), "the drill page's URL", log)
        browser.get(url)
        browser.execute_script(FETCH_RECORDER)
    assert get("/").status_code == 200
    # the intruder: every refusal must change nothing
    d.actions_before_refusals = _drill_actions(out)
    d.refusals = {
        "state without token": get("/api/state", None).status_code,
        "state wrong token": get("/api/state", "nope").status_code,
        "act without token": act("restart", {"replica": TARGET}, None).status_code,
        "act wrong token": act("restart", {"replica": TARGET}, "x" * 22).status_code,
        "act as GET": get("/api/act/restart").status_code,
        "facilitator state, trainee token": get("/facilitator/api/state").status_code,
        "facilitator page, trainee token": get("/facilitator/").status_code,
        "facilitator act, trainee token": client.post(
            "/facilitator/api/act/inject",
            json={"fault": "lose_node", "target": "node-b"},
            headers={"X-Gpuchaos-Token": token},
        ).status_code,
    }
    d.actions_after_refusals = _drill_actions(out)
    # the trainee: notice, find, fix, verify, resolve
    _wait(proc, lambda: replica_state() not in ("ready", ""), f"{TARGET} not Ready", log)
    if browser is not None:
        _wait(proc, lambda: _state_of(browser, TARGET), f"{TARGET} in the table", log)
        _wait(
            proc,
            lambda: "ready" not in _state_of(browser, TARGET).split(),
            f"{TARGET} shown not Ready",
            log,
        )
    trainee("ack", {})
    trainee("diagnose", {"kind": "replica-hung", "target": TARGET}, kind="replica-hung",
            target=TARGET)  # fmt: skip
    d.answers["bad diagnose"] = {"status": act("diagnose", {"kind": "gremlins"}).status_code}
    r = client.get("/facilitator/api/state", params={"token": fac_token})
    d.facilitator_state = r.json() if r.status_code == 200 else {"status": r.status_code}
    trainee("restart", {"replica": TARGET}, replica=TARGET)
    _wait(proc, lambda: replica_state() == "ready", f"{TARGET} Ready again", log)
    if browser is not None:
        _wait(
            proc,
            lambda: "ready" in _state_of(browser, TARGET).split(),
            f"{TARGET} Ready again in the table",
            log,
        )
    time.sleep(5)  # the SLOs hold a few seconds before it is declared resolved
    for rid in [r["id"] for r in state()["replicas"]]:
        get(f"/api/log/{rid}")
    if browser is not None:
        d.page_text = browser.find_element("tag name", "body").text
    trainee("resolve", {})
    if browser is not None:
        d.console = browser.get_log("browser")
        deadline = time.monotonic() + 30  # each answer is recorded as its body arrives
        acts = browser.execute_script("return window.__acts")
        while len(acts) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
            acts = browser.execute_script("return window.__acts")
        d.trainee_bodies += [(f"act {name}", body) for name, body in acts]


def _run_drill(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    tmp = tmp_path_factory.mktemp("drill")
    out, log = tmp / "run", tmp / "drill.log"
    pack = short_pack(tmp / "short.yaml")
    cmd = [sys.executable, "-m", "harness", "drill", str(pack), "--seed", "1",
           "--facilitator", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    d = Drill(out, -1, "", 0)
    browser = None
    try:
        with running(cmd, cwd=ROOT, log_path=log, env=env) as proc:
            browser, d.no_browser = _open_browser(tmp)  # while the drill deploys
            _script(proc, out, log, d, browser)
            try:
                proc.wait(timeout=CEILING_S)
            except Exception:
                pytest.fail(f"the drill did not end after resolve:\n{log.read_text()[-3000:]}")
            d.returncode = proc.returncode
    finally:
        if browser is not None:
            browser.quit()
    d.output = log.read_text(errors="replace")
    return d
