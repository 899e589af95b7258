"""Headless chromium for the tests that open a page (report.html, gameday.html, the live
page): the flags (nothing may be fetched from the network), finding the binary, and one
``--dump-dom`` of a file page with its console messages."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # any fetch from the network would fail loudly
    "--enable-logging=stderr",
    "--v=0",
]


def chromium() -> str:
    """The chromium binary; skips the test where it is missing (fails it in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run must install it")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return found


def dump_dom(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM of ``page`` after its scripts ran, and every console message it logged."""
    dom = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-3000:]
    return dom.stdout, [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
