"""Rows of ``requests.csv`` as the recording users write them: formatted once, batched.

Imported only inside the Locust process (it schedules its writes on gevent's loop).
:data:`ROW` formats a whole row in one ``%``; :class:`RowBatcher` hands all the rows
finished in one turn of the loop to the OS in one write; :func:`cached_field` keeps the
CSV fields of the few replica ids and phases there are.
"""

from __future__ import annotations

import logging

import gevent

from harness.records import RecordWriter, csv_field

log = logging.getLogger(__name__)

#: One row of ``requests.csv``, in the order of ``COLUMNS + OPTIONAL_COLUMNS``.
ROW = "%.6f,%.6f,%.3f,%s,%d,%d,%s,%s,%s,%s,%s\r\n"


class RowBatcher:
    """Rows of ``requests.csv`` finished in one turn of gevent's loop, written in one write.

    A row is handed to the OS at the start of the next loop turn, before the loop waits for
    any I/O: as good as written when its request ends (a reader tailing the file sees it at
    once), while a busy client makes one ``write(2)`` for all requests that finished
    together instead of one each (a write per row cost about 3% of the client's time per
    request). ``flush`` at exit writes whatever is left.
    """

    def __init__(self, writer: RecordWriter) -> None:
        self._writer = writer
        self._rows: list[str] = []

    def add(self, row: str) -> None:
        if not self._rows:
            gevent.get_hub().loop.run_callback(self.flush)
        self._rows.append(row)

    def flush(self) -> None:
        if not self._rows:
            return
        text = "".join(self._rows)
        self._rows.clear()
        try:
            self._writer.write_line(text)
        except Exception:
            log.exception("writing request records failed: %s", text.rstrip())


#: CSV fields of replica ids and phases seen so far (a handful; reset if it grows).
_FIELDS: dict[str, str] = {}


def cached_field(text: str) -> str:
    """``csv_field`` of a replica id or phase, remembered."""
    field = _FIELDS.get(text)
    if field is None:
        if len(_FIELDS) > 1024:
            _FIELDS.clear()
        field = _FIELDS[text] = csv_field(text)
    return field
