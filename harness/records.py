"""The request record: one row per request, failed and timed-out ones included.

This module is imported by the Locust process too, so it must not import anything that
pulls in urllib3, requests or kubernetes (gevent monkey-patching).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any, TextIO

REQUESTS_FILE = "requests.csv"

#: Column order of ``requests.csv``. Times are unix seconds; latencies milliseconds.
COLUMNS: tuple[str, ...] = (
    "start",  # unix seconds when the request was sent
    "end",  # unix seconds when the response finished (or failed)
    "latency_ms",  # end - start, in milliseconds
    "ttft_ms",  # time to the first streamed token, empty when there was none
    "output_tokens",  # tokens received
    "status",  # HTTP status, 0 when no response arrived
    "error",  # error text, empty on success
    "replica",  # replica id from the response header, empty when unknown
    "phase",  # load phase when the request started (baseline, spike, ...)
)

#: Columns written after :data:`COLUMNS` that readers may do without (older logs lack them);
#: the scorer reads :data:`COLUMNS` by name and ignores these.
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "queue_ms",  # open loop: time the request waited in the client queue before it was sent
)

REPLICA_HEADER = "x-replica-id"


class RecordWriter:
    """Appends request records to a CSV file, flushing each row as it comes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self._fh: TextIO = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._fh)
        if new:
            self._writer.writerow(COLUMNS + OPTIONAL_COLUMNS)
            self._fh.flush()

    def write(self, record: dict[str, Any]) -> None:
        columns = COLUMNS + OPTIONAL_COLUMNS
        self.write_row(["" if record.get(c) is None else record[c] for c in columns])

    def write_row(self, values: Sequence[Any]) -> None:
        """One row already in the order of ``COLUMNS + OPTIONAL_COLUMNS`` (the hot path)."""
        self._writer.writerow(values)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def format_row(record: dict[str, Any]) -> str:
    """One record as a CSV line (used by tests and tools that build synthetic logs)."""
    buf = io.StringIO()
    csv.writer(buf).writerow(["" if record.get(c) is None else record[c] for c in COLUMNS])
    return buf.getvalue()
