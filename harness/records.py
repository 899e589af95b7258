"""The request record: one row per request, failed and timed-out ones included.

This module is imported by the Locust process too, so it must not import anything that
pulls in urllib3, requests or kubernetes (gevent monkey-patching).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from typing import Any

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
    "lag_ms",  # open loop: generator lag, from the arrival's scheduled time to its dispatch
)

REPLICA_HEADER = "x-replica-id"


class RecordWriter:
    """Appends request records to a CSV file, each row written to the file as it comes.

    Every row is one ``write(2)`` on a file opened for appending: nothing waits in a buffer
    (a reader tailing the file, or a run killed right after, sees every finished request),
    and several writers appending to one file never interleave inside a row.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size == 0:
            self.write_line(",".join(COLUMNS + OPTIONAL_COLUMNS) + "\r\n")

    def write(self, record: dict[str, Any]) -> None:
        columns = COLUMNS + OPTIONAL_COLUMNS
        self.write_row(["" if record.get(c) is None else record[c] for c in columns])

    def write_row(self, values: Sequence[Any]) -> None:
        """One row in the order of ``COLUMNS + OPTIONAL_COLUMNS``, quoted by the csv module."""
        buf = io.StringIO()
        csv.writer(buf).writerow(values)
        self.write_line(buf.getvalue())

    def write_line(self, text: str) -> None:
        """Rows already formatted as CSV, each ending in ``\\r\\n``, in one write (the Locust
        hot path; fields that may hold a comma, a quote or a line break go through
        :func:`csv_field`)."""
        data = text.encode()
        while data:
            data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        os.close(self._fd)


class LineTail:
    """The complete lines appended to a file (``requests.csv``) since the last :meth:`read`.

    A last line without its newline waits for the next read. The first line is the header,
    kept in :attr:`header` and not returned. A file that is replaced (another inode: the
    merge of distributed workers' records) or shrinks is read again from its start, and
    that read says so (``restarted``), so a reader can drop what it had counted.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.header: bytes | None = None
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""

    def read(self) -> tuple[list[bytes], bool]:
        """(new complete lines without their line ends, whether the file was read anew)."""
        restarted = False
        try:
            with open(self.path, "rb") as fh:
                stat = os.fstat(fh.fileno())
                if stat.st_ino != self._inode or stat.st_size < self._offset:
                    restarted = self._inode is not None
                    self._inode, self._offset, self._partial, self.header = (
                        stat.st_ino,
                        0,
                        b"",
                        None,
                    )
                fh.seek(self._offset)
                chunk = fh.read(stat.st_size - self._offset)
        except FileNotFoundError:
            return [], False
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                continue
            if self.header is None:
                self.header = line
                continue
            out.append(line)
        return out, restarted


_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def csv_field(text: str) -> str:
    """``text`` as one CSV field, quoted the way the csv module's default writer quotes it."""
    if not text or _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def format_row(record: dict[str, Any]) -> str:
    """One record as a CSV line (used by tests and tools that build synthetic logs)."""
    buf = io.StringIO()
    csv.writer(buf).writerow(["" if record.get(c) is None else record[c] for c in COLUMNS])
    return buf.getvalue()
