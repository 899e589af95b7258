"""The requests that ended in the last seconds, read from ``requests.csv`` as it grows.

The SLO probe and the abort guards ask, every few seconds of a run, how the last few
seconds went. Reading the whole file for that made each check cost more the longer the run
(a game day of an hour at 1,000 requests/s is 3.6 million rows, seconds to parse, every
check). :class:`RecentRequests` reads only the bytes appended since its last call, keeps the
lines of the requests that ended within ``keep_s``, and parses just those by the rules of
:func:`harness.scoring.slis.read_requests` (same columns, same dtypes), so a check costs the
same in the first minute and in the tenth hour.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import threading
from pathlib import Path

import pandas as pd

from harness.records import COLUMNS, LineTail
from harness.scoring.slis import parse_requests

log = logging.getLogger(__name__)


class RecentRequests:
    """Rows of one ``requests.csv`` that ended within the last ``keep_s`` seconds.

    Thread-safe. A file that is replaced (the merge of distributed workers' records writes a
    new one) or shrinks is read again from its start; a window longer than ``keep_s`` widens
    ``keep_s`` and reads the file again once. A last line without its newline waits for the
    next call.
    """

    def __init__(self, path: str | os.PathLike[str], keep_s: float = 60.0) -> None:
        self.path = Path(path)
        self.keep_s = keep_s
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._tail = LineTail(self.path)
        self._lines: collections.deque[tuple[float, bytes]] = collections.deque()

    @property
    def kept(self) -> int:
        """Rows held now (those that ended within ``keep_s`` of the last call)."""
        return len(self._lines)

    def window(self, now: float, window_s: float) -> pd.DataFrame:
        """The requests that ended at or after ``now - window_s``, as ``read_requests`` gives
        them (an empty frame with those columns when there are none or no file yet)."""
        with self._lock:
            if window_s > self.keep_s:
                self.keep_s = window_s
                self._reset()
            self._read()
            cutoff = now - self.keep_s
            while self._lines and self._lines[0][0] < cutoff:
                self._lines.popleft()
            header = self._tail.header
            rows = [line for end, line in self._lines if end >= now - window_s]
        if header is None:
            return parse_requests(io.BytesIO(_HEADER), self.path)
        return parse_requests(io.BytesIO(b"\n".join([header, *rows, b""])), self.path)

    def _read(self) -> None:
        lines, restarted = self._tail.read()
        if restarted:
            log.debug("%s was replaced: reading it again", self.path)
            self._lines.clear()
        for line in lines:
            try:
                end = float(line.split(b",", 2)[1])
            except (IndexError, ValueError):
                # read_requests drops a row without an end time too
                log.debug("%s: skipping a row without an end time: %r", self.path, line)
                continue
            self._lines.append((end, line))


#: The header of an empty window, before the file has one.
_HEADER = (",".join(COLUMNS) + "\n").encode()
