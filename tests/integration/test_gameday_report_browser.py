"""gameday.html in a real headless browser (Debian's chromium), as report.html is opened in
test_report_run.py: no console message, every plot drawn, the links to the runs' reports
resolving. The game-day folder is assembled from real scored run folders (no game day is
run). Skips without chromium locally; fails without it in CI (``CI`` set)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

from harness.gameday.report import write_gameday_reports
from tests.support.browser import CHROMIUM_FLAGS, chromium, dump_dom
from tests.support.runs import PASSING_SLOS, gameday_folder


def test_gameday_report_opens_in_headless_chromium(tmp_path: Path) -> None:
    root = tmp_path / "results" / "gamedays"
    gameday_folder(
        root / "20260103T000000Z-weekly",
        [("gpu-node-loss", {"slos": PASSING_SLOS, "day": 2, "reports": True})],
        started="2026-01-03T00:00:00Z",
    )
    folder = gameday_folder(
        root / "20260110T000000Z-weekly",
        [
            ("gpu-node-loss", {"slos": PASSING_SLOS, "day": 9, "slow": True, "reports": True}),
            ("traffic-spike", {"day": 9.01, "reports": True}),
        ],
        started="2026-01-10T00:00:00Z",
        not_run=[("replica-hang", "interrupted (SIGINT)")],
    )
    write_gameday_reports(folder)
    page = (folder / "gameday.html").resolve().as_uri()
    base = [chromium(), *CHROMIUM_FLAGS]
    dom, console = dump_dom(folder / "gameday.html", tmp_path / "profile1")
    assert console == [], console
    plots = re.findall(r'<svg class="plot" id="([a-z0-9-]+)"', dom)
    assert plots == ["p99-1", "errors-1", "p99-2", "errors-2"]
    rendered = re.search(r'data-plots-rendered="(\d+)"', dom)
    assert rendered is not None, "the page's load handler did not run"
    assert int(rendered.group(1)) == len(plots)  # each drawn with a size and a line
    links = re.findall(r'<a href="([^"]+)"', dom)
    assert links and all((folder / unquote(link)).is_file() for link in links)
    assert "20260103T000000Z-weekly" in dom  # the comparison with the last game day
    shot = tmp_path / "gameday.png"
    proc = subprocess.run(
        [
            *base,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--window-size=1000,1800",
            f"--screenshot={shot}",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 30_000
