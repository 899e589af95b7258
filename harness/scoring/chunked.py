"""Scoring a request log too long for memory: :class:`ChunkedRequests`, read in parts.

Why a module of its own: it answers the questions of
:class:`harness.scoring.source.RequestSource` from the parts of :mod:`harness.scoring.parts`
on disk, a partition at a time, with the same numbers the in-memory functions give:

- **Counts** (requests, failures, good requests, tokens per window, lost requests) are sums
  over the partitions.
- **Percentiles over a window** (the run, a phase, a load phase) are exact: the order
  statistics around each quantile are found in a few passes
  (:class:`harness.scoring.select.OrderStatistics`) and interpolated as numpy does.
- **The per-second table and rolling windows** need every request of a second together:
  the partitions hold whole seconds in time order, so they are built a partition at a time
  (the requests of a second that may go on in the next partition wait for it, which also
  serves a ``t0`` other than the one the partitions were cut by).

The far-off rule of :func:`harness.scoring.intake.drop_far_off` (the median start time) is
applied the same way, exactly, before the partitions are cut.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import ScoringError
from harness.rundir import REQUESTS_FILE
from harness.scoring.analytics import (
    ROLLING_QUANTILES,
    ROLLING_RATES,
    WINDOWED,
    Interval,
    Spans,
    rolling_pick,
    rolling_rates,
    rolling_starts,
    window_mask,
)
from harness.scoring.instrument import has_lag, parse_lag
from harness.scoring.intake import MAX_SPAN_S, drop_far_off, events_near, warn_far_off
from harness.scoring.parts import (
    ARRAYS,
    COLUMNS,
    LagParts,
    Partitions,
    Spill,
    as_arrays,
    join,
    merge_warnings,
    partition_bounds,
    pick,
    rows_in,
    window_key,
    window_values,
)
from harness.scoring.parts import row_blocks as _row_blocks
from harness.scoring.persecond import seconds_of, seconds_table
from harness.scoring.recovery import failed_touching
from harness.scoring.select import OrderStatistics, numpy_quantiles, quantile_ranks
from harness.scoring.slis import (
    LIGHT,
    QUANTILES,
    RequestArrays,
    _empty_requests,
    figures_from,
    open_complete_lines,
    parse_requests,
)
from harness.scoring.source import Window


class ChunkedRequests:
    """A request log read in parts (see module); build it with :meth:`read`."""

    def __init__(
        self, folder: Path, rows_per_part: int, timeout_ms: float, slos: Any = None
    ) -> None:
        self.folder = folder
        self.spill = Spill(folder)
        self.timeout_ms = timeout_ms
        self.slos = slos
        self.rows_per_part = rows_per_part
        self.n = 0
        self.first_start = math.inf
        self.last_end = -math.inf
        #: ``start`` and ``lag_ms`` when the log has them (for the scorecard's instrument)
        self.lag: LagParts | None = None
        self._limits: tuple[float, float] | None = None  # the far-off rule's, when it drops
        self._parts: Partitions | None = None
        self._t0 = 0.0
        # per window: counts, percentiles, whether only the light ones
        self._figured: dict[Hashable, tuple[list[int], dict[str, float], bool]] = {}

    # -- reading ---------------------------------------------------------------------

    @classmethod
    def read(
        cls,
        path: str | os.PathLike[str],
        folder: Path,
        *,
        timeout_ms: float,
        slos: Any,
        warnings: list[str] | None,
        block_bytes: int,
    ) -> ChunkedRequests:
        """Read ``requests.csv`` a block at a time into ``folder`` (a scratch folder), by the
        rules and with the warnings of :func:`harness.scoring.slis.read_requests`."""
        path = os.fspath(path)
        out = cls(folder, max(1000, block_bytes // 64), timeout_ms, slos)
        said: list[str] = []
        with open_complete_lines(path, warnings) as reader:
            if reader is None:
                return out
            try:
                header = reader.readline()
                if has_lag(header):
                    out.lag = LagParts(folder, out.rows_per_part)
                blocks = 0
                for block in _row_blocks(reader, block_bytes):
                    blocks += 1
                    out._add(parse_requests(io.BytesIO(header + block), path, warnings=said))
                    if out.lag is not None:
                        out.lag.add(parse_lag(io.BytesIO(header + block), path))
                if not blocks:  # the header alone: still checked as the one reader does
                    parse_requests(io.BytesIO(header), path, warnings=said)
            except OSError as exc:
                raise ScoringError(f"{path}: cannot read request log: {exc}") from exc
        if warnings is not None:
            warnings.extend(merge_warnings(said))
        return out

    def _add(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        arrays = RequestArrays.build(df, self.timeout_ms, self.slos)
        columns = {name: getattr(arrays, name) for name in ARRAYS}
        columns["start"] = df["start"].to_numpy(dtype="float64")
        self.spill.add(columns)
        self.n += len(df)
        self.first_start = min(self.first_start, float(columns["start"].min()))
        self.last_end = max(self.last_end, float(columns["end"].max()))

    # -- the far-off rule ------------------------------------------------------------

    def drop_far_off(
        self, events: list[dict[str, Any]], warnings: list[str] | None
    ) -> list[dict[str, Any]]:
        """:func:`harness.scoring.intake.drop_far_off` for a log in parts: the kept events."""
        if not self.n:
            return drop_far_off(_empty_requests(), events, warnings)[1]
        times = [e["time"] for e in events]
        starts_lo, starts_hi = self.first_start, self._start_max()
        lowest = min([starts_lo, self._end_min(), *times])
        highest = max([self.last_end, starts_hi, *times])
        if lowest >= starts_hi - MAX_SPAN_S and highest <= starts_lo + MAX_SPAN_S:
            return events  # every time is within the span of any median: nothing to drop
        middle = self._median_start()
        low, high = middle - MAX_SPAN_S, middle + MAX_SPAN_S
        kept, first, last = 0, math.inf, -math.inf
        for cols in self.spill.blocks(("start", "end")):
            inside = self._inside(cols, (low, high))
            if inside.any():
                kept += int(np.count_nonzero(inside))
                first = min(first, float(cols["start"][inside].min()))
                last = max(last, float(cols["end"][inside].max()))
        if kept < self.n:
            warn_far_off(warnings, REQUESTS_FILE, self.n - kept, "row(s)")
            self._limits = (low, high)
            self.n, self.first_start, self.last_end = kept, first, last
        return events_near(events, low, high, warnings)

    @staticmethod
    def _inside(cols: Mapping[str, np.ndarray], limits: tuple[float, float]) -> np.ndarray:
        low, high = limits  # as Series.between: both ends included
        start, end = cols["start"], cols["end"]
        return (start >= low) & (start <= high) & (end >= low) & (end <= high)

    def _start_max(self) -> float:
        return max(float(c["start"].max()) for c in self.spill.blocks(("start",)))

    def _end_min(self) -> float:
        return min(float(c["end"].min()) for c in self.spill.blocks(("end",)))

    def _median_start(self) -> float:
        """``np.median`` of every start time, exactly."""
        n = self.n
        ranks = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
        blocks = self.spill.blocks
        top = np.zeros(1 << 16, dtype=np.int64)
        for c in blocks(("start",)):
            top += OrderStatistics.top_histogram(c["start"])
        stats = OrderStatistics(lambda: ({"start": c["start"]} for c in blocks(("start",))))
        found = stats.find({"start": ranks}, {"start": top})["start"]
        return float(np.mean(np.array([found[r] for r in ranks], dtype=np.float64)))

    # -- the partitions --------------------------------------------------------------

    def _partitions(self) -> Partitions:
        """Cut the partitions (once, by the first start time) and drop the blocks."""
        if self._parts is not None:
            return self._parts
        t0 = self.first_start if self.n else 0.0
        counts = np.zeros(1, dtype=np.int64)
        for _cols, sec in self._blocks_by_second(t0, ("start", "end")):
            if sec.size:
                add = np.bincount(sec)
                if add.size > counts.size:
                    counts = np.concatenate([counts, np.zeros(add.size - counts.size, np.int64)])
                counts[: add.size] += add
        parts = Partitions(self.folder / "parts", partition_bounds(counts, self.rows_per_part))
        for cols, sec in self._blocks_by_second(t0, tuple(COLUMNS)):
            parts.add(sec, cols)
        self.spill.remove()
        self._parts, self._t0 = parts, t0
        return parts

    def _blocks_by_second(
        self, t0: float, names: Sequence[str]
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        wanted = tuple(dict.fromkeys([*names, "start", "end"]))
        for cols in self.spill.blocks(wanted):
            if self._limits is not None:
                cols = pick(cols, self._inside(cols, self._limits))
            yield cols, seconds_of(cols["end"], t0)

    def _scan(self, names: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        for _p, cols in self._partitions().scan(names):
            yield cols

    def _by_second(self, t0: float) -> Iterator[tuple[int, int | None, dict[str, np.ndarray]]]:
        """``(first second, end second or None for the rest, requests)``: every request of
        those seconds (from ``t0``) together, in time order."""
        parts = self._partitions()
        carry: dict[str, np.ndarray] | None = None
        done = 0
        for p, cols in parts.scan(ARRAYS):
            cols = join(carry, cols)
            sec = seconds_of(cols["end"], t0)
            if p + 1 < len(parts) and parts.rows[p + 1 :].any():
                # later partitions hold ends from t0p + bounds[p + 1] on
                cut = math.floor(self._t0 + parts.bounds[p + 1] - t0) - 1
                cut = max(cut, done)
                ready = sec < cut
                carry = pick(cols, ~ready)
                yield done, cut, pick(cols, ready)
                done = cut
            else:
                carry = None
                yield done, None, cols
                return
        if carry is not None:
            yield done, None, carry

    # -- RequestSource ---------------------------------------------------------------

    def __len__(self) -> int:
        return self.n

    def time_range(self) -> tuple[float, float]:
        return self.first_start, self.last_end

    def per_second(self, t0: float, *, until: float | None = None) -> pd.DataFrame:
        last = int(seconds_of(np.array([self.last_end]), t0)[0]) if self.n else -1
        if until is not None:
            last = max(last, math.ceil(until - t0) - 1)
        if not self.n:
            empty = {name: np.empty(0, np.dtype(dtype)) for name, dtype in COLUMNS.items()}
            return seconds_table(as_arrays(empty), np.empty(0, np.int64), last + 1)
        pieces = []
        for lo, hi, cols in self._by_second(t0):
            stop = last + 1 if hi is None else hi
            sec = seconds_of(cols["end"], t0) - lo  # this piece's seconds only
            table = seconds_table(as_arrays(cols), sec, stop - lo)
            table["second"] += lo
            pieces.append(table)
        return pd.concat(pieces, ignore_index=True)

    def counts(self, windows: Sequence[Spans]) -> list[tuple[int, int]]:
        known = [self._figured.get(window_key(spans)) for spans in windows]
        tally = [[0, 0] if k is None else k[0][:2] for k in known]
        todo = [i for i, k in enumerate(known) if k is None]  # windows not figured yet
        for cols in self._scan(("end", "failed")) if todo else ():
            for i in todo:
                failed, spans = cols["failed"], windows[i]
                if spans is not None:
                    failed = failed[window_mask(cols["end"], spans)]
                tally[i][0] += int(failed.size)
                tally[i][1] += int(np.count_nonzero(failed))
        return [(n, bad) for n, bad in tally]

    def lost(self, lo: float, hi: float) -> int:
        return sum(
            failed_touching(c["start"], c["end"], c["failed"], lo, hi)
            for c in self._scan(("start", "end", "failed"))
        )

    def prefetch(self, windows: Sequence[Window]) -> None:
        todo: dict[Hashable, tuple[Spans, bool]] = {}
        for spans, _duration, is_light in windows:
            key = window_key(spans)
            todo[key] = (spans, todo.get(key, (spans, True))[1] and is_light)
        self._figure({k: v for k, v in todo.items() if not self._known(k, v[1])})

    def _known(self, key: Hashable, light: bool) -> bool:
        return key in self._figured and (light or not self._figured[key][2])

    def figures(
        self, spans: Sequence[Interval] | None, duration_s: float, *, light: bool = False
    ) -> dict[str, Any]:
        key = window_key(spans)
        if not self._known(key, light):
            self._figure({key: (spans, light)})
        (n, errors, good, tokens), quantiles, _light = self._figured[key]
        if light:
            quantiles = {k: (v if k in LIGHT else math.nan) for k, v in quantiles.items()}
        duration = duration_s if spans is None else float(sum(b - a for a, b in spans))
        return figures_from(n, errors, good, tokens, quantiles, duration)

    def _figure(self, todo: Mapping[Hashable, tuple[Spans, bool]]) -> None:
        """Counts and exact percentiles of the windows ``todo`` (see module), together."""
        if not todo:
            return
        wanted: dict[Hashable, list[tuple[str, str, float]]] = {
            key: [q for q in QUANTILES if not is_light or q[0] in LIGHT]
            for key, (_spans, is_light) in todo.items()
        }
        columns = sorted({col for qs in wanted.values() for _k, col, _q in qs})
        tally = {key: [0, 0, 0, 0] for key in todo}
        sizes: dict[Hashable, int] = {}
        tops: dict[Hashable, np.ndarray] = {}
        pair: Any
        for cols in self._scan(ARRAYS):
            for key, (spans, _light) in todo.items():
                rows = rows_in(cols["end"], spans)
                if rows is not None and not rows.any():
                    continue
                failed = cols["failed"] if rows is None else cols["failed"][rows]
                good = cols["good"] if rows is None else cols["good"][rows]
                tokens = cols["tokens"] if rows is None else cols["tokens"][rows]
                t = tally[key]
                t[0] += int(failed.size)
                t[1] += int(np.count_nonzero(failed))
                t[2] += int(np.count_nonzero(good))
                t[3] += int(tokens[~failed].sum())
            for pair, values in window_values(cols, todo, wanted).items():
                sizes[pair] = sizes.get(pair, 0) + int(values.size)
                hist = OrderStatistics.top_histogram(values)
                tops[pair] = tops[pair] + hist if pair in tops else hist
        ranks: dict[Hashable, list[int]] = {}
        for key, qs in wanted.items():
            for col in {c for _k, c, _q in qs}:
                m = sizes.get((key, col), 0)
                if m:
                    below, above, _gamma = quantile_ranks(m, [q for _k, c, q in qs if c == col])
                    ranks[(key, col)] = sorted({*below.tolist(), *above.tolist()})
        stats = OrderStatistics(
            lambda: (window_values(c, todo, wanted) for c in self._scan(["end", *columns]))
        )
        found = stats.find(ranks, tops)
        for key, qs in wanted.items():
            quantiles = {k: math.nan for k, _c, _q in QUANTILES}
            for col in {c for _k, c, _q in qs}:
                picked = [(k, q) for k, c, q in qs if c == col]
                got = numpy_quantiles(
                    sizes.get((key, col), 0), [q for _k, q in picked], found.get((key, col), {})
                )
                quantiles.update({k: v for (k, _q), v in zip(picked, got, strict=True)})
            self._figured[key] = (tally[key], quantiles, todo[key][1])

    def rolling_worst(
        self, t0: float, load_end: float, window_s: float, name: str
    ) -> tuple[float, float | None]:
        key = WINDOWED[name][0]
        seconds = int(seconds_of(np.array([self.last_end]), t0)[0]) + 1 if self.n else 0
        n_win, size, starts = rolling_starts(t0, load_end, window_s, seconds)
        if key in ROLLING_RATES:
            total = np.zeros(size, dtype=np.int64)
            hits = np.zeros(size, dtype=np.int64)
            for cols in self._scan(("end", "failed", "good")) if self.n else ():
                sec = seconds_of(cols["end"], t0)
                weights = {"failed": cols["failed"], "ok": ~cols["failed"], "good": cols["good"]}
                total += np.bincount(sec, minlength=size)
                hits += np.bincount(sec[weights[ROLLING_RATES[key]]], minlength=size)
            return rolling_pick(rolling_rates(key, total, hits, starts, n_win), starts, name)
        column, q = ROLLING_QUANTILES[key]
        values = np.full(starts.size, np.nan)
        buf_sec, buf_val = np.empty(0, np.int64), np.empty(0)
        nxt = 0  # the next window start to measure
        for _lo, hi, cols in self._by_second(t0) if self.n else ():
            sec = seconds_of(cols["end"], t0)
            keep = ~np.isnan(cols[column])
            order = np.argsort(sec[keep], kind="stable")
            buf_sec = np.concatenate([buf_sec, sec[keep][order]])
            buf_val = np.concatenate([buf_val, cols[column][keep][order]])
            while nxt < starts.size and (hi is None or nxt + n_win <= hi):
                s = int(starts[nxt])
                lo_i, hi_i = np.searchsorted(buf_sec, [s, min(s + n_win, size)])
                if hi_i > lo_i:
                    values[nxt] = np.quantile(buf_val[lo_i:hi_i], q)
                nxt += 1
            drop = int(np.searchsorted(buf_sec, nxt))
            buf_sec, buf_val = buf_sec[drop:], buf_val[drop:]
        return rolling_pick(values, starts, name)
