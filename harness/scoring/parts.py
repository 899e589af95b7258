"""A ``requests.csv`` too long for memory, read in blocks and kept on disk as binary parts.

Why a module of its own: a soak of 14 hours at 1,000 requests/s is 50 million records, 5 GB
of CSV and more than 10 GB as one pandas frame. This module reads the file a block of
:func:`chunk_bytes` at a time, each block parsed by the scorer's own reader
(:func:`harness.scoring.slis.parse_requests`, so every rule for a damaged log holds, row by
row), turns it into the per-request numbers scoring uses
(:class:`harness.scoring.slis.RequestArrays` and the start time, 50 bytes a request) and
appends them to files in a scratch folder: first as read (:class:`Spill`), then sorted into
:class:`Partitions` of whole seconds of the run, in time order, each small enough to load
alone. Memory stays at a few blocks whatever the length of the run.

Blocks end at a line end outside quotes (an even number of ``"`` before it: the error text
of a request may hold a quoted line break), and the warnings of every block are added up
into the ones reading the file at once gives (:func:`merge_warnings`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import ConfigError
from harness.scoring.analytics import window_mask
from harness.scoring.instrument import LAG_COLUMN, lag_affected
from harness.scoring.slis import RequestArrays

log = logging.getLogger(__name__)

#: Environment variable: the size of a block of ``requests.csv`` read at once, in bytes; a
#: log longer than one block is scored in parts.
CHUNK_ENV = "GPUCHAOS_SCORE_CHUNK_BYTES"
#: Why 16 MiB: about 150,000 records; pandas needs several times a block's size while it
#: parses one, so this keeps the scorer near 300 MB (64 MiB blocks: 1.5 GB) and costs no
#: measurable time (the per-block overhead is small against parsing). Partitions hold
#: a block's size / 64 requests (about 260,000 here, 13 MB on disk).
DEFAULT_CHUNK_BYTES = 16 << 20

#: The per-request columns kept on disk, with their types.
COLUMNS: dict[str, str] = {
    "start": "float64",
    "end": "float64",
    "latency": "float64",
    "ttft": "float64",
    "tpot": "float64",
    "tokens": "int64",
    "failed": "bool",
    "good": "bool",
}


def chunk_bytes() -> int:
    """The block size (:data:`CHUNK_ENV`, else :data:`DEFAULT_CHUNK_BYTES`)."""
    text = os.environ.get(CHUNK_ENV, "").strip()
    if not text:
        return DEFAULT_CHUNK_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1024:
        raise ConfigError(CHUNK_ENV, "", f"expected a whole number of bytes >= 1024, got {text!r}")
    return value


def _last_row_end(block: bytes) -> int:
    """Index after the last line end of ``block`` that lies outside quotes (-1 if none in
    its last :data:`_LOOK_BACK` lines); ``block`` starts at the start of a row."""
    end = block.rfind(b"\n")
    if end < 0:
        return -1
    quotes = block.count(b'"', 0, end)
    for _line in range(_LOOK_BACK):
        if quotes % 2 == 0:
            return end + 1
        before = block.rfind(b"\n", 0, end)
        if before < 0:
            return -1
        quotes -= block.count(b'"', before, end)
        end = before
    return -1


#: How many line ends from the end of a block :func:`_last_row_end` tries: a quoted field
#: with more line breaks than this makes the block longer instead.
_LOOK_BACK = 10_000


def row_blocks(reader: io.BufferedIOBase, size: int) -> Iterator[bytes]:
    """Blocks of about ``size`` bytes of whole rows from ``reader`` (complete lines only)."""
    carry = b""
    while True:
        data = reader.read(size)
        if not data:
            break
        block = carry + data
        cut = _last_row_end(block)
        if cut <= 0:
            carry = block  # a row longer than a block (or a quoted field open): read on
            continue
        carry = block[cut:]
        yield block[:cut]
    if carry:
        yield carry


_COUNT = re.compile(r"\d+")
#: The order the whole-file reader says things in (the first number is the count).
_ORDER = (
    "left out # row(s) with extra fields",
    "left out # row(s) with a cell that is not a number",
    "dropped # row(s) without a start or end time",
    "dropped # row(s) with an infinite or huge value",
)


def merge_warnings(lines: Sequence[str]) -> list[str]:
    """The warnings of all blocks as one read of the file gives them: the counts of each
    kind added up, in the order of that reader."""
    totals: dict[str, int] = {}
    order: list[str] = []
    for line in lines:
        found = _COUNT.search(line)
        key = line if found is None else line[: found.start()] + "#" + line[found.end() :]
        if key not in totals:
            order.append(key)
            totals[key] = 0
        totals[key] += int(found.group()) if found else 0

    def rank(key: str) -> int:
        text = key.split(": ", 1)[-1]
        return _ORDER.index(text) if text in _ORDER else len(_ORDER)

    out = []
    for key in sorted(order, key=rank):  # a stable sort: unknown kinds keep their order
        out.append(key.replace("#", str(totals[key]), 1) if "#" in key else key)
    return out


class Spill:
    """Per-request columns of each block as read, one ``.npz`` file per block."""

    def __init__(self, folder: Path, name: str = "block") -> None:
        self.folder = folder
        self.name = name
        self.files: list[Path] = []

    def add(self, columns: dict[str, np.ndarray]) -> None:
        path = self.folder / f"{self.name}-{len(self.files):06d}.npz"
        np.savez(path, allow_pickle=False, **columns)
        self.files.append(path)

    def blocks(self, names: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        """The columns ``names`` of each block, in order."""
        for path in self.files:
            with np.load(path) as data:
                yield {name: data[name] for name in names}

    def remove(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)
        self.files = []


class Partitions:
    """The requests sorted into runs of whole seconds from ``t0``, in time order.

    Partition ``p`` holds the requests whose second (:func:`harness.scoring.persecond.
    seconds_of`) lies in ``[bounds[p], bounds[p + 1])``; the last one also every later
    second. One file per partition and column, appended to block by block."""

    def __init__(
        self, folder: Path, bounds: Sequence[int], columns: Mapping[str, str] = COLUMNS
    ) -> None:
        self.folder = folder
        self.bounds = list(bounds)
        self.columns = dict(columns)
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self.rows = np.zeros(len(self.bounds), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.bounds)

    def _path(self, p: int, name: str) -> Path:
        return self.folder / f"part-{p:05d}.{name}"

    def add(self, sec: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Append the rows of one block, whose seconds are ``sec``."""
        which = np.searchsorted(np.asarray(self.bounds[1:]), sec, side="right")
        order = np.argsort(which, kind="stable")
        cuts = np.searchsorted(which[order], np.arange(len(self.bounds) + 1))
        for p in range(len(self.bounds)):
            lo, hi = int(cuts[p]), int(cuts[p + 1])
            if lo == hi:
                continue
            rows = order[lo:hi]
            self.rows[p] += hi - lo
            for name in self.columns:
                with open(self._path(p, name), "ab") as fh:
                    columns[name][rows].tofile(fh)

    def load(self, p: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The columns ``names`` of partition ``p``."""
        out = {}
        for name in names:
            path = self._path(p, name)
            dtype = np.dtype(self.columns[name])
            out[name] = np.fromfile(path, dtype=dtype) if path.exists() else np.empty(0, dtype)
        return out

    def scan(self, names: Sequence[str]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(p, columns)`` of every partition that holds requests, in time order."""
        for p in range(len(self.bounds)):
            if self.rows[p]:
                yield p, self.load(p, names)


def partition_bounds(per_second: np.ndarray, rows: int) -> list[int]:
    """First seconds of partitions of about ``rows`` requests each (a busier second makes
    one alone), from the requests per second."""
    bounds = [0]
    total = 0
    for s, count in enumerate(per_second.tolist()):
        if total and total + count > rows:
            bounds.append(s)
            total = 0
        total += count
    return bounds


class LagParts:
    """``start`` and ``lag_ms`` of a log read in blocks (open loop), kept on disk: a
    :data:`harness.scoring.instrument.LagSummary`, whose seconds' p95 lag is computed a
    partition of seconds at a time, as :func:`~harness.scoring.instrument.read_lag`'s
    frame gives it."""

    def __init__(self, folder: Path, rows_per_part: int) -> None:
        self.folder = folder
        self.rows_per_part = rows_per_part
        self.spill = Spill(folder, "lag")

    def add(self, frame: pd.DataFrame) -> None:
        """The rows of :func:`~harness.scoring.instrument.parse_lag` of one block."""
        if len(frame):
            start = frame["start"].to_numpy(dtype="float64")
            self.spill.add({"start": start, "lag": frame[LAG_COLUMN].to_numpy(dtype="float64")})

    def _inside(
        self, t0: float, seconds: int
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        for cols in self.spill.blocks(("start", "lag")):
            inside = (cols["start"] >= t0) & (cols["start"] < t0 + seconds)
            cols = {name: values[inside] for name, values in cols.items()}
            yield cols, np.floor(cols["start"] - t0).astype("int64")

    def __call__(self, t0: float, seconds: int) -> tuple[np.ndarray, float | None, bool]:
        counts = np.zeros(max(seconds, 1), dtype=np.int64)
        peak, rows = -np.inf, 0
        for cols, sec in self._inside(t0, seconds):
            if sec.size:
                add = np.bincount(sec, minlength=counts.size)
                counts = np.concatenate([counts, np.zeros(add.size - counts.size, np.int64)])
                counts += add
                peak, rows = max(peak, float(cols["lag"].max())), rows + int(sec.size)
        affected = np.zeros(seconds, dtype=bool)
        if not rows:
            return affected, None, False
        columns = {"start": "float64", "lag": "float64"}
        parts = Partitions(
            self.folder / "lag-parts", partition_bounds(counts, self.rows_per_part), columns
        )
        for cols, sec in self._inside(t0, seconds):
            parts.add(sec, cols)
        for _p, cols in parts.scan(("start", "lag")):
            frame = pd.DataFrame({"start": cols["start"], LAG_COLUMN: cols["lag"]})
            affected |= lag_affected(frame, t0, seconds)
        return affected, peak, True


# -- helpers of harness.scoring.chunked over the columns of a partition --------------------

#: The columns of :class:`harness.scoring.slis.RequestArrays`.
ARRAYS = ("end", "failed", "latency", "ttft", "tpot", "tokens", "good")
#: A window: its spans, None for the whole run.
Spans = Sequence[tuple[float, float]] | None


def as_arrays(cols: Mapping[str, np.ndarray]) -> RequestArrays:
    return RequestArrays(**{name: cols[name] for name in ARRAYS})


def pick(cols: Mapping[str, np.ndarray], rows: np.ndarray | slice) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in cols.items()}


def join(a: Mapping[str, np.ndarray] | None, b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return b if a is None else {name: np.concatenate([a[name], b[name]]) for name in b}


def rows_in(end: np.ndarray, spans: Spans) -> np.ndarray | None:
    """Which requests of a partition ended in ``spans``; None when all of them did."""
    if spans is None or not end.size:
        return None
    first, last = float(end.min()), float(end.max())
    if any(a <= first and last < b for a, b in spans):
        return None
    return window_mask(end, spans)


def window_values(
    cols: Mapping[str, np.ndarray],
    todo: Mapping[Hashable, tuple[Spans, bool]],
    wanted: Mapping[Hashable, list[tuple[str, str, float]]],
) -> dict[Hashable, np.ndarray]:
    """The values (NaN left out) of every window and column of one partition."""
    out: dict[Hashable, np.ndarray] = {}
    for key, (spans, _light) in todo.items():
        rows = rows_in(cols["end"], spans)
        for col in {c for _k, c, _q in wanted[key]}:
            values = cols[col] if rows is None else cols[col][rows]
            out[(key, col)] = values[~np.isnan(values)]
    return out


def window_key(spans: Spans) -> Hashable:
    return None if spans is None else tuple((float(a), float(b)) for a, b in spans)
