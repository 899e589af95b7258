"""Row by row reading of a ``requests.csv`` the fast reader refused, and the scorer's warnings.

Why a module of its own: pandas' C reader reads a request log in one pass, but one bad row
(a number that is not one, a row with more fields than the header, bytes that are not
UTF-8) makes it refuse the whole file. A run folder is written while the run goes and may
be damaged (a full disk, a hand edit), and one bad row must not cost the other rows their
score. So when the fast reader refuses, this module reads the file again with the csv
module, keeps every row it can, and says what it left out; the fast path stays as fast as
before. A warning goes to the log and, when the caller collects them, into the scorecard's
``warnings`` list (named by file name, not path, so a moved folder scores the same).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence

import pandas as pd

from harness.errors import ScoringError

log = logging.getLogger(__name__)


def warn(warnings: list[str] | None, path: str | os.PathLike[str], text: str) -> None:
    """Log ``<file name>: text`` and add it to ``warnings`` when the caller collects them."""
    line = f"{os.path.basename(os.fspath(path))}: {text}"
    log.warning("%s", line)
    if warnings is not None:
        warnings.append(line)


def lenient_frame(
    data: bytes,
    path: str | os.PathLike[str],
    numeric: Sequence[str],
    warnings: list[str] | None,
) -> pd.DataFrame:
    """The rows of a CSV log as a frame: ``numeric`` columns as float64, the others as str.

    Bytes that are not UTF-8 are replaced; a row with more fields than the header, or with a
    cell of a ``numeric`` column that is neither empty nor a number (``nan`` included), is
    left out with a warning; a shorter row is padded with empty cells (as pandas does). A
    header that repeats a column raises :class:`ScoringError`."""
    text = data.decode("utf-8", errors="replace").replace("\x00", "")
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ScoringError(f"{os.fspath(path)}: malformed CSV: {exc}") from exc
    rows = [r for r in rows if r]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in numeric})
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise ScoringError(f"{os.fspath(path)}: the header repeats a column: {rows[0]}")
    width = len(header)
    kept = [r + [""] * (width - len(r)) for r in rows[1:] if len(r) <= width]
    if len(kept) < len(rows) - 1:
        warn(warnings, path, f"left out {len(rows) - 1 - len(kept)} row(s) with extra fields")
    frame = pd.DataFrame(kept, columns=header, dtype="str")
    bad = pd.Series(False, index=frame.index)
    for col in numeric:
        if col not in frame.columns:
            continue
        cell = frame[col].str.strip()
        value = pd.to_numeric(cell, errors="coerce")
        bad |= (cell != "") & value.isna()
        frame[col] = value.astype("float64")
    if bad.any():
        warn(warnings, path, f"left out {int(bad.sum())} row(s) with a cell that is not a number")
        frame = frame[~bad]
    return frame.reset_index(drop=True)
