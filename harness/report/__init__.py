"""Reports of a run folder: ``report.html``, ``junit.xml`` and ``summary.md``.

:func:`write_reports` writes all three from the folder alone (``gpuchaos report RUN_DIR``
and the end of every ``gpuchaos run``, aborted ones included).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from harness.errors import ReportError
from harness.report.data import RunData, load_run
from harness.report.html import write_report_html
from harness.report.junit import write_junit
from harness.report.summary import write_summary
from harness.report.tenancy import is_tenancy
from harness.rundir import REPORT_FILE, RunDir
from harness.scoring.tenancy_view import tenant_dir

log = logging.getLogger(__name__)

__all__ = [
    "RunData",
    "load_run",
    "write_reports",
]


def write_reports(run_dir: str | Path, scorecard: dict[str, Any] | None = None) -> list[Path]:
    """Write the three reports into ``run_dir``; returns their paths.

    The scorecard is ``scorecard`` when given, else ``scorecard.json`` (scored first when it
    is missing); a tenancy run's tenants get theirs in ``tenants/<name>/`` first (the run's
    page links them). junit.xml and summary.md are written before the HTML page, so a problem with
    the plots cannot cost CI its files; any writer that fails raises :class:`ReportError`
    after the others were written.
    """
    began = time.perf_counter()
    data = load_run(run_dir, scorecard)
    written: list[Path] = []
    problems: list[str] = []
    paths = RunDir(data.run_dir)
    writers = (
        (paths.junit, lambda p: write_junit(data.scorecard, data.name, p)),
        (paths.summary, lambda p: write_summary(data.scorecard, data.title, p, REPORT_FILE)),
        (paths.report, lambda p: write_report_html(data, p)),
    )
    if is_tenancy(data.scorecard):  # each tenant's own reports, linked from the run's
        for name, card in data.scorecard["tenants"].items():
            try:
                written += write_reports(tenant_dir(data.run_dir, name), card)
            except Exception as exc:
                log.warning("writing tenant %s's reports failed", name, exc_info=True)
                problems.append(f"tenant {name}: {exc}")
    for path, write in writers:
        try:
            written.append(write(path))
        except Exception as exc:
            log.warning("writing %s failed", path.name, exc_info=True)
            problems.append(f"{path.name}: {exc}")
    log.info(
        "reports written in %.2f s: %s",
        time.perf_counter() - began,
        ", ".join(p.name for p in written),
    )
    if problems:
        raise ReportError(f"{data.run_dir}: could not write " + "; ".join(problems))
    return written
