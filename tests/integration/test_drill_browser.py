"""A trainee works a real drill in a real browser (headless chromium through chromedriver).

The short drill of :mod:`tests.support.drill_session` (node-a-0 hung at 7 s; shared with
``test_drill.py``, whose HTTP checks run beside the browser) is served with its page; the
page is opened at its printed URL. The scripted trainee only uses the page: it waits until
the replicas table shows node-a-0 not Ready, then submits the panel's forms (acknowledge;
diagnose with the kind and target picked in the lists; restart node-a-0), reads each answer
beside its form, waits for node-a-0 Ready again in the table and declares the incident
resolved. The browser logs nothing to its console, and the debrief scores what the page
did. Skips without chromium, chromedriver or selenium locally; fails in CI.
"""

from __future__ import annotations

import pytest

from harness.drill.view import hidden_words
from tests.support.drill_session import TARGET, Drill, shared_drill


@pytest.fixture(scope="module")
def drill_run(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    return shared_drill(tmp_path_factory)


def test_a_trainee_works_the_drill_in_chromium(drill_run: Drill) -> None:
    if drill_run.no_browser is not None:
        raise drill_run.no_browser  # skipped locally, failed in CI
    assert drill_run.returncode == 0, drill_run.output[-3000:]
    answers = drill_run.page_answers
    assert answers["ack"] == "acknowledged", answers
    assert answers["diagnose"] == f"diagnosis recorded: replica-hung on {TARGET}", answers
    assert answers["restart"].startswith(f"restarted {TARGET}"), answers
    assert answers["resolve"].startswith("declared resolved"), answers
    assert drill_run.console == [], drill_run.console
    low = drill_run.page_text.lower()
    assert not [w for w in hidden_words() if w in low], drill_run.page_text[:2000]
    drill = drill_run.drill
    score = drill["score"]
    assert drill["ended_by"] == "resolved"
    # the page's four forms, in order; the one refused diagnosis is the HTTP client's
    assert [(a["action"], a["ok"]) for a in drill["trainee"]] == [
        ("ack", True), ("diagnose", True), ("diagnose", False), ("restart", True),
        ("resolve", True),
    ]  # fmt: skip
    assert 0 < score["time_to_acknowledge_s"] <= score["time_to_diagnose_s"]
    assert score["time_to_diagnose_s"] <= drill["load_end_s"] - drill["injected_at_s"]
    assert score["parts"]["detect"]["points"] > 0 and score["parts"]["diagnose"]["points"] > 0
    assert score["parts"]["mitigate"]["first"] == "restart"
