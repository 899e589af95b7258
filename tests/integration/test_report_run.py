"""Reports and live progress of real runs, and report.html in a real headless browser.

The browser test needs Debian's chromium: it skips without it locally and fails in CI
(``CI`` set), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import csv
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.integration.conftest import ROOT, gpuchaos_run_cmd
from tests.support.browser import CHROMIUM_FLAGS, chromium, dump_dom
from tests.support.procs import Processes, wait_ready

_cmd = gpuchaos_run_cmd


def test_run_writes_every_report(node_loss_run: tuple[Path, int, str]) -> None:
    run_dir, code, output = node_loss_run
    assert code in (0, 1), output
    for name in ("report.html", "junit.xml", "summary.md"):
        assert (run_dir / name).is_file(), name
    suite = ET.parse(run_dir / "junit.xml").getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests", "0")) >= 5
    assert "| SLO | objective | measured | result |" in (run_dir / "summary.md").read_text()


def test_plain_progress_lines_when_not_a_terminal(node_loss_run: tuple[Path, int, str]) -> None:
    _, _, output = node_loss_run
    summaries = [line for line in output.splitlines() if "progress:" in line and "req/s" in line]
    assert summaries, output
    assert "ready node-a=" in summaries[-1]
    assert re.search(r"progress: \+ *[\d.]+ s  fault_start node-a \(lose_node\)", output), output
    assert re.search(r"progress: \+ *[\d.]+ s  fault_end node-a", output), output


def test_telemetry_series(node_loss_run: tuple[Path, int, str]) -> None:
    run_dir, _, _ = node_loss_run
    with open(run_dir / "telemetry.csv", newline="") as fh:
        pairs = {(r["source"], r["metric"]) for r in csv.DictReader(fh)}
    for pair in (
        ("system", "cpu_pct"),
        ("node-a", "replicas_ready"),
        ("node-b", "replicas_ready"),
        ("platform", "replicas_ready"),
        ("node-b-0", "queue_waiting"),
        ("node-b-0", "running"),
        ("node-b-0", "kv_cache_usage"),
        ("node-b-0", "oom_total"),
        ("node-b-0", "rss_mib"),
        ("harness", "sample_ms"),
    ):
        assert pair in pairs, pair


def test_report_command_regenerates(node_loss_run: tuple[Path, int, str]) -> None:
    run_dir, _, _ = node_loss_run
    saved = {n: (run_dir / n).read_text() for n in ("junit.xml", "summary.md", "report.html")}
    for name in saved:
        (run_dir / name).unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "report", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name, text in saved.items():
        assert (run_dir / name).read_text() == text, name
        assert str(run_dir / name) in proc.stdout


def test_report_opens_in_headless_chromium(
    node_loss_run: tuple[Path, int, str], tmp_path: Path
) -> None:
    run_dir, _, _ = node_loss_run
    page = (run_dir / "report.html").resolve().as_uri()
    base = [chromium(), *CHROMIUM_FLAGS]
    dom, console = dump_dom(run_dir / "report.html", tmp_path / "profile1")
    assert console == [], console  # no console message at all: no error, no failed fetch
    plots = re.findall(r'<svg class="plot" id="([a-z_]+)"', dom)
    assert {"latency", "ttft", "errors", "throughput", "replicas", "queue"} <= set(plots)
    assert "gpu_util" in plots or "cpu" in plots
    html = (run_dir / "report.html").read_text()
    with_lines = sum('class="series"' in svg for svg in html.split('<svg class="plot"')[1:])
    rendered = re.search(r'data-plots-rendered="(\d+)"', dom)
    assert rendered is not None, "the page's load handler did not run"
    assert int(rendered.group(1)) == with_lines == len(plots)
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            *base,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--window-size=1000,2400",
            f"--screenshot={shot}",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_aborted_run_still_writes_reports(tmp_path: Path, processes: Processes) -> None:
    out = tmp_path / "run"
    proc = processes.start(
        _cmd(out, duration_s=60, warmup_s=30, spike_start_s=40, spike_duration_s=10),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tl = out / "timeline.jsonl"
    wait_ready(
        proc,
        lambda: tl.is_file() and '"load_start"' in tl.read_text(),
        timeout_s=120,
        name="the run",
        until="the load started (load_start)",
        interval_s=0.2,
    )
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=90)
    assert proc.returncode == 2, output
    root = ET.parse(out / "junit.xml").getroot()
    error = root.find("./testsuite/testcase[@name='run']/error")
    assert error is not None and "interrupted" in (error.get("message") or "")
    assert "ABORTED" in (out / "summary.md").read_text()
    assert "aborted" in (out / "report.html").read_text()
