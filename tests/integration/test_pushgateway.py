"""push_scorecard against a real Prometheus Pushgateway (Debian's prometheus-pushgateway) on
a free loopback port: the metrics read back from its /metrics, with their names, labels and
values; promtool's lint of the exposition when promtool is there. Skips without the binary
locally; .ci/run installs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harness.errors import ReportError
from harness.report.pushgateway import METRIC_NAMES, push_scorecard, scorecard_registry
from tests.support.ports import free_port
from tests.support.procs import Processes, wait_http_ready
from tests.support.runs import PASSING_SLOS, scored_run

INSTALL = "apt-get install -y prometheus-pushgateway"


def _binary(name: str, install: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") and name == "prometheus-pushgateway":
            pytest.fail(f"{name} is missing in CI: .ci/run must install it")
        pytest.skip(f"{name} not installed ({install})")
    return found


@pytest.fixture
def gateway(processes: Processes, tmp_path: Path) -> Iterator[str]:
    binary = _binary("prometheus-pushgateway", INSTALL)
    port = free_port()
    log = tmp_path / "pushgateway.log"
    proc = processes.start(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={tmp_path / 'pushgateway.db'}",
        ],
        log_path=log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http_ready(proc, f"{url}/-/ready", timeout_s=60, name="pushgateway", log=log)
    yield url


def _samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [
        (s.name, dict(s.labels), s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name.startswith("gpuchaos_")
    ]


def _card(run: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((run / "scorecard.json").read_text())
    return card


def test_push_round_trip(gateway: str, tmp_path: Path) -> None:
    failed = _card(scored_run(tmp_path / "a"))  # the default SLOs: three missed
    passed = _card(scored_run(tmp_path / "b", slos=PASSING_SLOS))
    push_scorecard(gateway, failed, "gpu-node-loss", plan="weekly")
    push_scorecard(gateway, passed, "gpu-node-loss")  # a single run: plan "none"
    samples = _samples(gateway)
    names = {n for n, _, _ in samples}
    assert names <= set(METRIC_NAMES)
    for name in (
        "gpuchaos_experiment_score",
        "gpuchaos_slo_passed",
        "gpuchaos_time_to_recover_seconds",
        "gpuchaos_requests_lost_total",
        "gpuchaos_run_timestamp_seconds",
    ):
        assert name in names, name

    def value(name: str, plan: str, **labels: str) -> float:
        (v,) = [
            v
            for n, lab, v in samples
            if n == name
            and lab.get("plan") == plan
            and all(lab.get(k) == x for k, x in labels.items())
        ]
        return v

    for _, labels, _ in samples:  # the grouping key on every series
        assert labels["job"] == "gpuchaos" and labels["experiment"] == "gpu-node-loss"
        assert labels["plan"] in ("weekly", "none")
    assert value("gpuchaos_experiment_score", "weekly") == failed["score"]["value"]
    assert value("gpuchaos_experiment_score", "none") == passed["score"]["value"]
    assert value("gpuchaos_experiment_passed", "weekly") == 0
    assert value("gpuchaos_experiment_passed", "none") == 1
    for slo in failed["slos"]:
        assert value("gpuchaos_slo_passed", "weekly", slo=slo["name"]) == int(slo["passed"])
        assert value("gpuchaos_slo_measured", "weekly", slo=slo["name"]) == slo["measured"]
        assert value("gpuchaos_slo_objective", "weekly", slo=slo["name"]) == slo["objective"]
    assert value("gpuchaos_time_to_recover_seconds", "weekly") == 2.0
    assert value("gpuchaos_requests_lost_total", "weekly") == 10
    assert value("gpuchaos_run_timestamp_seconds", "weekly") == failed["run"]["t0"]
    # a second push of a group replaces it: the failing run's extra SLOs are gone
    push_scorecard(gateway, passed, "gpu-node-loss", plan="weekly")
    again = _samples(gateway)
    weekly_slos = {lab["slo"] for n, lab, _ in again if n == "gpuchaos_slo_passed"}
    assert weekly_slos == {s["name"] for s in passed["slos"]}


def test_a_failed_push_is_a_report_error() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ReportError, match=f"127.0.0.1:{port}"):
        push_scorecard(f"http://127.0.0.1:{port}", {"verdict": "pass"}, "x", timeout_s=5)


def test_promtool_accepts_the_metric_names(tmp_path: Path) -> None:
    promtool = _binary("promtool", "apt-get install -y prometheus")
    card = _card(scored_run(tmp_path / "a"))
    exposition = generate_latest(scorecard_registry(card))
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert {f.name for f in text_string_to_metric_families(exposition.decode())} >= {
        "gpuchaos_requests_lost",  # a counter: exposed as gpuchaos_requests_lost_total
        "gpuchaos_experiment_score",
    }
