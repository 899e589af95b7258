"""The workers' request records, counted, read and merged into the run's ``requests.csv``.

Each worker of a distributed load writes its own records file,
``requests.worker-<n>.csv``, flushed per row (see :mod:`harness.load.workerenv`), or, as
a Kubernetes Job, its records to stdout (:func:`parse_log_records` reads them from the
pod's log). :func:`merge_records` sorts the rows of all of them by start time into
``requests.csv``; the runners call it once Locust has exited, on every exit path (a run
that aborts still gets its merged records), and it can be run again by hand on a run
folder. While the load runs, :class:`LiveMerger` appends each worker's complete rows to
``requests.csv`` as they come (for live progress and stop conditions).

Standard library only: no Locust, no Kubernetes client.
"""

from __future__ import annotations

import csv
import logging
import os
import threading
from pathlib import Path

from harness.load.workerenv import worker_record_files
from harness.records import COLUMNS, OPTIONAL_COLUMNS
from harness.rundir import REQUESTS_FILE

log = logging.getLogger(__name__)

HEADER = COLUMNS + OPTIONAL_COLUMNS


def count_records(path: Path) -> int:
    """Rows in ``requests.csv`` (the header excluded); 0 when there is no file yet."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return max(0, sum(1 for _ in csv.reader(fh)) - 1)
    except OSError:
        return 0


def dict_row(header: list[str], row: list[str]) -> list[str]:
    """``row`` (in ``header``'s column order) in the order of :data:`HEADER`."""
    by_name = dict(zip(header, row, strict=True))
    return [by_name.get(c, "") for c in HEADER]


def _start_key(row: list[str]) -> float:
    try:
        return float(row[0])
    except (ValueError, IndexError):
        return float("inf")


def _rows(path: Path) -> tuple[list[list[str]], int]:
    """The complete rows of one records file, and how many torn ones were dropped."""
    rows: list[list[str]] = []
    torn = 0
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return rows, 0
            width = len(header)
            for row in reader:
                if len(row) != width:  # a worker killed in the middle of a row
                    torn += 1
                    continue
                rows.append(dict_row(header, row))
    except OSError as exc:
        log.error("cannot read %s: %s", path, exc)
    return rows, torn


def merge_records(run_dir: Path, sources: list[Path] | None = None) -> int:
    """Merge the workers' records files into ``run_dir/requests.csv``, sorted by start time;
    returns the rows written. Rows torn by a killed worker are dropped (and logged)."""
    run_dir = Path(run_dir)
    files = worker_record_files(run_dir) if sources is None else sources
    merged: list[list[str]] = []
    for path in files:
        rows, torn = _rows(path)
        if torn:
            log.warning("%s: dropped %d incomplete rows", path, torn)
        merged.extend(rows)
    merged.sort(key=_start_key)
    target = run_dir / REQUESTS_FILE
    tmp = target.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(merged)
    os.replace(tmp, target)
    log.info("merged %d records from %d workers into %s", len(merged), len(files), target)
    return len(merged)


def parse_log_records(text: str) -> list[list[str]]:
    """Request records in a worker pod's log (the worker writes them to stdout): the
    header line and every complete row after it; other lines (warnings) are skipped."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for line in text.splitlines():
        try:
            cells = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            continue
        if header is None:
            if tuple(cells[: len(COLUMNS)]) == tuple(COLUMNS):
                header = cells
            continue
        if len(cells) == len(header) and _start_key(cells) != float("inf"):
            rows.append(dict_row(header, cells))
    return rows


class LiveMerger(threading.Thread):
    """Appends the workers' complete rows to ``requests.csv`` as they are written, so that
    what reads it during the run (live progress, stop conditions) sees every worker's
    requests; :func:`merge_records` rewrites it sorted when the load stops."""

    def __init__(self, run_dir: Path, poll_s: float = 0.5) -> None:
        super().__init__(name="records-merger", daemon=True)
        self.run_dir = Path(run_dir)
        self.poll_s = poll_s
        self._offsets: dict[Path, int] = {}
        self._halt = threading.Event()
        target = self.run_dir / REQUESTS_FILE
        with open(target, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(HEADER)

    def run(self) -> None:
        while not self._halt.wait(self.poll_s):
            try:
                self.poll()
            except OSError as exc:
                log.warning("live merge of the workers' records failed: %s", exc)

    def poll(self) -> int:
        """Append the rows completed since the last poll; returns how many."""
        out: list[bytes] = []
        for path in worker_record_files(self.run_dir):
            start = self._offsets.get(path)
            with open(path, "rb") as fh:
                if start is None:  # skip the header line
                    first = fh.readline()
                    if not first.endswith(b"\n"):
                        continue
                    start = len(first)
                fh.seek(start)
                data = fh.read()
            end = data.rfind(b"\n") + 1  # complete lines only: a row being written waits
            if end:
                out.append(data[:end])
            self._offsets[path] = start + end
        if out:
            with open(self.run_dir / REQUESTS_FILE, "ab") as fh:
                fh.write(b"".join(out))
        return sum(chunk.count(b"\n") for chunk in out)

    def halt(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()
