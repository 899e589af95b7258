"""The docs site builds strictly, lists every page, works offline and loads cleanly.

One strict build per module (``mkdocs build --strict``, as ``make docs`` runs it, into a
temporary folder): a broken link or anchor, a page missing from the nav or a failing
reference generator fails it. Then the built HTML is searched for anything fetched from
another host (scripts, stylesheets, fonts: the site must work offline), and pages are
opened in Debian's headless chromium, served over HTTP on 127.0.0.1 (as ``make docs-serve``
does; the search index is fetched by a worker, which a file:// page may not start), with
every network lookup mapped to failure: the console must stay empty.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.browser import CHROMIUM_FLAGS, chromium

ROOT = Path(__file__).resolve().parents[2]
#: A tag that makes the browser fetch something: <script src>, <link href>, <img src>, ...
FETCHING = re.compile(
    r"<(script|link|img|iframe|source|audio|video)\b[^>]*\b(?:src|href)=[\"']?(https?:)?//",
    re.IGNORECASE,
)
#: The report tests' flags, with loopback let through (the site is served on 127.0.0.1).
FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
    if flag.startswith("--host-resolver-rules")
    else flag
    for flag in CHROMIUM_FLAGS
]
CSS_REMOTE = re.compile(r"(@import|url\()\s*[\"']?(https?:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    warnings = [ln for ln in built.stderr.splitlines() if ln.startswith(("WARNING", "ERROR"))]
    assert built.returncode == 0 and not warnings, built.stderr[-4000:]
    return out


def _nav_pages(nav: object) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_pages(value)


def test_every_page_is_in_the_nav_and_built(site: Path) -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.Loader)
    nav = set(_nav_pages(config["nav"]))
    written = {
        str(p.relative_to(ROOT / "docs"))
        for p in (ROOT / "docs").rglob("*.md")
        if "hooks" not in p.parts
    }
    assert written <= nav, f"pages missing from the nav in mkdocs.yml: {sorted(written - nav)}"
    for page in nav:
        assert (site / page.replace(".md", ".html")).is_file(), page
    reference = (site / "reference" / "experiment.html").read_text(encoding="utf-8")
    assert "HarnessSpec" in reference and "spike_multiplier" in reference


def test_the_site_fetches_nothing_from_elsewhere(site: Path) -> None:
    offenders = []
    for path in site.rglob("*"):
        if path.suffix == ".html":
            text = path.read_text(encoding="utf-8")
            offenders += [
                f"{path.relative_to(site)}: {m.group(0)}" for m in FETCHING.finditer(text)
            ]
        elif path.suffix == ".css":
            text = path.read_text(encoding="utf-8")
            offenders += [
                f"{path.relative_to(site)}: {m.group(0)}" for m in CSS_REMOTE.finditer(text)
            ]
    assert not offenders, offenders[:10]
    assert "fonts.googleapis" not in (site / "index.html").read_text(encoding="utf-8")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("page", ["index.html", "reference/experiment.html"])
def test_pages_load_in_chromium_with_an_empty_console(
    served: str, page: str, tmp_path: Path
) -> None:
    dom = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={tmp_path}", "--virtual-time-budget=3000",
         "--dump-dom", f"{served}/{page}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-3000:]
    console = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, console
    assert 'class="md-content"' in dom.stdout  # Material's layout was rendered
    assert "md-search" in dom.stdout
