"""Service level indicators from the request log: reading it, what counts as failed, effective
and good, and the figures of a set of requests (per second: :mod:`harness.scoring.persecond`).

Definitions used everywhere in scoring:

- A request is **failed** when its HTTP status is not 200 or its error text is non-empty.
  Failed and timed-out requests are never dropped.
- **Effective latency**: a successful request counts with its ``latency_ms``; a failed one
  counts as ``max(latency_ms, timeout_ms)`` (a failure is at least as bad as a timeout).
- **Effective TTFT**: a successful request counts with its ``ttft_ms``; a failed one counts as
  ``max(ttft_ms, timeout_ms)`` (``timeout_ms`` when it has no TTFT); a successful request
  without a TTFT (non-streaming) is left out of TTFT figures.
- **TPOT** (time per output token) of a successful request: ``(latency_ms - ttft_ms) /
  (output_tokens - 1)``; left out when it has no TTFT or fewer than 2 output tokens. A failed
  request counts as ``timeout_ms``.
- **Good** request (goodput): succeeded, and its effective latency, TTFT and TPOT are each
  within the tail objective set for them (see :func:`goodput_thresholds`).
- Percentiles are numpy's default (linear interpolation between closest ranks).
- Requests are bucketed into whole seconds by their **end** time: bucket ``s`` holds requests
  with ``t0 + s <= end < t0 + s + 1``; requests that ended before ``t0`` go to bucket 0.

Everything is vectorized (no Python loops over rows) so ten million records score in seconds.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import ScoringError
from harness.records import COLUMNS
from harness.scoring.lenient import lenient_frame, warn

log = logging.getLogger(__name__)

#: Default client timeout used for failed requests in percentiles, milliseconds.
DEFAULT_TIMEOUT_MS = 30_000.0

_NUMERIC = ("start", "end", "latency_ms", "ttft_ms", "output_tokens", "status")
#: Beyond this no field of a request is a measurement (and ``output_tokens`` or ``status``
#: would not fit an int64): a row with such a value is dropped, as one with infinity is.
_LARGEST = 1e15
_TEXT = ("error", "replica", "phase")


class _Prefix(io.RawIOBase):
    """A read-only view of the first ``limit`` bytes of an open binary file."""

    def __init__(self, fh: io.BufferedReader, limit: int) -> None:
        super().__init__()
        self._fh = fh
        self._base = fh.tell()
        self._limit = limit
        self._left = limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._limit - self._left

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Only from the start (``SEEK_SET``): a second read of the prefix."""
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("seek from the start only")
        offset = max(0, min(offset, self._limit))
        self._fh.seek(self._base + offset)
        self._left = self._limit - offset
        return offset

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        n = min(len(view), self._left)
        if n <= 0:
            return 0
        got = self._fh.readinto(view[:n])
        self._left -= got
        return got


def _complete_length(fh: io.BufferedReader, size: int) -> int:
    """Bytes up to and including the last newline: a torn last line is left out."""
    if size == 0:
        return 0
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return size
    pos = size
    chunk = 1 << 16
    while pos > 0:
        start = max(0, pos - chunk)
        fh.seek(start)
        block = fh.read(pos - start)
        idx = block.rfind(b"\n")
        if idx >= 0:
            return start + idx + 1
        pos = start
    return 0


def _empty_requests() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in ("start", "end", "latency_ms")})
    frame["ttft_ms"] = pd.Series(dtype="float64")
    frame["output_tokens"] = pd.Series(dtype="int64")
    frame["status"] = pd.Series(dtype="int64")
    for col in _TEXT:
        frame[col] = pd.Series(dtype="str")
    return frame[list(COLUMNS)]


def read_requests(
    path: str | os.PathLike[str], *, warnings: list[str] | None = None
) -> pd.DataFrame:
    """Read ``requests.csv`` into a DataFrame with the columns of :data:`harness.records.COLUMNS`.

    Dtypes: ``start``, ``end``, ``latency_ms``, ``ttft_ms`` float64 (``ttft_ms`` NaN when empty);
    ``output_tokens`` and ``status`` int64 (empty -> 0); ``error``, ``replica``, ``phase`` strings
    (empty -> ``""``). A missing ``latency_ms`` is filled from ``(end - start) * 1000``.
    What a damaged log holds is stepped over, each kind with a warning (logged, and added to
    ``warnings`` when given): a last line without its newline (a run killed mid-write), rows
    without a start or end time, rows with a value that is not a finite number or is out of
    range, and (see :mod:`harness.scoring.lenient`) rows with extra fields or a cell that is
    not a number. A missing or unreadable file, or one whose header lacks a column, raises
    :class:`ScoringError` naming the path.
    """
    path = os.fspath(path)
    with open_complete_lines(path, warnings) as reader:
        if reader is None:
            return _empty_requests()
        try:
            return parse_requests(reader, path, warnings=warnings)
        except OSError as exc:
            raise ScoringError(f"{path}: cannot read request log: {exc}") from exc


@contextlib.contextmanager
def open_complete_lines(path: str, warnings: list[str] | None) -> Iterator[Any]:
    """A reader over the complete lines of the request log at ``path`` (None when it has
    none), a torn last line skipped with a warning; a missing or unreadable file is a
    ScoringError. Shared by the in-memory and the chunked readers."""
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError as exc:
        raise ScoringError(f"{path}: request log not found") from exc
    except OSError as exc:
        raise ScoringError(f"{path}: cannot read request log: {exc.strerror or exc}") from exc
    with fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            length = _complete_length(fh, size)
            fh.seek(0)
        except OSError as exc:
            raise ScoringError(f"{path}: cannot read request log: {exc}") from exc
        if length < size:
            warn(warnings, path, f"skipped a torn last line ({size - length} bytes)")
        if length == 0:
            warn(warnings, path, "no complete lines: no requests to score")
            yield None
        else:
            yield io.BufferedReader(_Prefix(fh, length), buffer_size=1 << 20)


def parse_requests(
    reader: Any, path: str | os.PathLike[str], *, warnings: list[str] | None = None
) -> pd.DataFrame:
    """The DataFrame of :func:`read_requests` from ``reader``: complete lines of a
    ``requests.csv``, its header first (``path`` names it in errors and warnings). When the
    fast reader refuses the lines and ``reader`` can seek, they are read again row by row."""
    path = os.fspath(path)
    start = reader.tell() if reader.seekable() else None
    try:
        raw = pd.read_csv(
            reader,
            dtype={c: "float64" for c in _NUMERIC} | {c: "str" for c in _TEXT},
            keep_default_na=False,
            na_values={c: [""] for c in _NUMERIC},
            encoding="utf-8",
            engine="c",
        )
    except pd.errors.EmptyDataError:
        return _empty_requests()
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        if start is None:
            raise ScoringError(f"{path}: malformed request log: {exc}") from exc
        log.info("%s: the fast reader refused it (%s); reading it row by row", path, exc)
        reader.seek(start)
        raw = lenient_frame(reader.read(), path, _NUMERIC, warnings)
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ScoringError(f"{path}: request log lacks column(s): {', '.join(missing)}")
    frame = raw[list(COLUMNS)]
    bad = frame["start"].isna() | frame["end"].isna()
    if bad.any():
        warn(warnings, path, f"dropped {int(bad.sum())} row(s) without a start or end time")
        frame = frame[~bad]
    numbers = frame[list(_NUMERIC)].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        odd = np.isinf(numbers).any(axis=1) | (np.abs(numbers) > _LARGEST).any(axis=1)
    if odd.any():
        warn(warnings, path, f"dropped {int(odd.sum())} row(s) with an infinite or huge value")
        frame = frame[~odd]
    frame = frame.reset_index(drop=True)
    latency = frame["latency_ms"].fillna((frame["end"] - frame["start"]) * 1000.0)
    out = pd.DataFrame(
        {
            "start": frame["start"],
            "end": frame["end"],
            "latency_ms": latency,
            "ttft_ms": frame["ttft_ms"],
            "output_tokens": frame["output_tokens"].fillna(0).astype("int64"),
            "status": frame["status"].fillna(0).astype("int64"),
        }
    )
    for col in _TEXT:
        out[col] = frame[col].fillna("").astype("str")
    return out


def failed_mask(df: pd.DataFrame) -> pd.Series:
    """Boolean Series: True where a request failed (status != 200 or a non-empty error)."""
    error = df["error"]
    return (df["status"] != 200) | (error.notna() & (error != ""))


def effective_latency_ms(
    df: pd.DataFrame, timeout_ms: float = DEFAULT_TIMEOUT_MS, *, failed: pd.Series | None = None
) -> pd.Series:
    """Latency used in percentiles: ``latency_ms``; ``max(latency_ms, timeout_ms)`` if failed.

    ``failed`` may pass a precomputed :func:`failed_mask` to save work on large logs."""
    failed = failed_mask(df) if failed is None else failed
    latency = df["latency_ms"].astype("float64")
    return latency.where(~failed, np.fmax(latency, timeout_ms))


def effective_ttft_ms(
    df: pd.DataFrame, timeout_ms: float = DEFAULT_TIMEOUT_MS, *, failed: pd.Series | None = None
) -> pd.Series:
    """TTFT used in percentiles: ``ttft_ms`` if successful (NaN when none, i.e. left out);
    ``max(ttft_ms, timeout_ms)`` if failed (``timeout_ms`` when the request had no TTFT)."""
    failed = failed_mask(df) if failed is None else failed
    ttft = df["ttft_ms"].astype("float64")
    return ttft.where(~failed, np.fmax(ttft, timeout_ms))


def tpot_ms(df: pd.DataFrame) -> pd.Series:
    """Raw time per output token of each request, ms: ``(latency - ttft) / (tokens - 1)``;
    NaN without a TTFT or with fewer than 2 output tokens."""
    tokens = df["output_tokens"].to_numpy(dtype="float64")
    latency = df["latency_ms"].to_numpy(dtype="float64")
    ttft = df["ttft_ms"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(tokens >= 2, (latency - ttft) / (tokens - 1), np.nan)
    return pd.Series(value, index=df.index, name="tpot_ms")


def effective_tpot_ms(
    df: pd.DataFrame, timeout_ms: float = DEFAULT_TIMEOUT_MS, *, failed: pd.Series | None = None
) -> pd.Series:
    """TPOT used in percentiles: :func:`tpot_ms` if successful, ``timeout_ms`` if failed."""
    failed = failed_mask(df) if failed is None else failed
    return tpot_ms(df).where(~failed, timeout_ms)


def goodput_thresholds(slos: Any) -> dict[str, float | None]:
    """Per-request limits a request must meet to be *good*, from the tail objectives of an
    :class:`~harness.config.SLOSpec`: ``latency_ms`` (``p99_latency_ms``, else
    ``p95_latency_ms``, else ``p50_latency_ms``), ``ttft_ms`` (``ttft_p99_ms``, else
    ``ttft_p95_ms``), ``tpot_ms`` (``tpot_p99_ms``, else ``tpot_p95_ms``); None when unset."""

    def first(*names: str) -> float | None:
        for name in names:
            value = getattr(slos, name, None) if slos is not None else None
            if value is not None:
                return float(value)
        return None

    return {
        "latency_ms": first("p99_latency_ms", "p95_latency_ms", "p50_latency_ms"),
        "ttft_ms": first("ttft_p99_ms", "ttft_p95_ms"),
        "tpot_ms": first("tpot_p99_ms", "tpot_p95_ms"),
    }


@dataclass(frozen=True)
class RequestArrays:
    """The per-request numpy arrays every figure is computed from (built once per run)."""

    end: np.ndarray
    failed: np.ndarray
    latency: np.ndarray
    ttft: np.ndarray
    tpot: np.ndarray
    tokens: np.ndarray
    good: np.ndarray

    @classmethod
    def build(
        cls, df: pd.DataFrame, timeout_ms: float = DEFAULT_TIMEOUT_MS, slos: Any = None
    ) -> RequestArrays:
        """Arrays of ``df``; ``slos`` (an SLOSpec) sets the goodput thresholds."""
        failed_s = failed_mask(df)
        failed = failed_s.to_numpy(dtype=bool)
        latency = effective_latency_ms(df, timeout_ms, failed=failed_s).to_numpy(dtype="float64")
        ttft = effective_ttft_ms(df, timeout_ms, failed=failed_s).to_numpy(dtype="float64")
        tpot = effective_tpot_ms(df, timeout_ms, failed=failed_s).to_numpy(dtype="float64")
        good = ~failed
        limits = goodput_thresholds(slos)
        if limits["latency_ms"] is not None:
            good &= latency <= limits["latency_ms"]
        if limits["ttft_ms"] is not None:
            good &= np.isnan(ttft) | (ttft <= limits["ttft_ms"])
        if limits["tpot_ms"] is not None:
            good &= np.isnan(tpot) | (tpot <= limits["tpot_ms"])
        return cls(
            end=df["end"].to_numpy(dtype="float64"),
            failed=failed,
            latency=latency,
            ttft=ttft,
            tpot=tpot,
            tokens=df["output_tokens"].to_numpy(dtype=np.int64),
            good=good,
        )

    def __len__(self) -> int:
        return int(self.end.size)


def _nan_quantiles(arr: np.ndarray, qs: list[float]) -> list[float]:
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return [math.nan] * len(qs)
    return [float(v) for v in np.quantile(arr, qs)]


def figures(
    arrays: RequestArrays, mask: np.ndarray | None, duration_s: float, *, light: bool = False
) -> dict[str, Any]:
    """Figures of the requests selected by ``mask`` (all when None) over ``duration_s``.

    Keys: ``requests``, ``errors``, ``successes``, ``good``, ``error_rate``, ``availability``,
    latency ``p50/p95/p99_latency_ms``, ``ttft_p50/p95/p99_ms``, ``tpot_p50/p95/p99_ms``,
    ``duration_s``, ``throughput_rps``, ``goodput_rps``, ``goodput_ratio`` (good / requests),
    ``tokens_per_s``. With ``light`` only p99 latency and p95 TTFT are computed (the others
    are NaN). Figures with nothing to measure are NaN.
    """

    def sel(values: np.ndarray) -> np.ndarray:
        return values if mask is None else values[mask]

    failed = sel(arrays.failed)
    n = int(failed.size)
    errors = int(np.count_nonzero(failed))
    good = int(np.count_nonzero(sel(arrays.good)))
    tokens = int(sel(arrays.tokens)[~failed].sum()) if n else 0
    if light:
        p50 = p95 = t50 = t99 = s50 = s95 = s99 = math.nan
        (p99,) = _nan_quantiles(sel(arrays.latency), [0.99])
        (t95,) = _nan_quantiles(sel(arrays.ttft), [0.95])
    else:
        qs = [0.5, 0.95, 0.99]
        p50, p95, p99 = _nan_quantiles(sel(arrays.latency), qs)
        t50, t95, t99 = _nan_quantiles(sel(arrays.ttft), qs)
        s50, s95, s99 = _nan_quantiles(sel(arrays.tpot), qs)
    quantiles = {
        "p50_latency_ms": p50,
        "p95_latency_ms": p95,
        "p99_latency_ms": p99,
        "ttft_p50_ms": t50,
        "ttft_p95_ms": t95,
        "ttft_p99_ms": t99,
        "tpot_p50_ms": s50,
        "tpot_p95_ms": s95,
        "tpot_p99_ms": s99,
    }
    return figures_from(n, errors, good, tokens, quantiles, duration_s)


#: The percentile figures of :func:`figures`: (key, array of :class:`RequestArrays`, q).
QUANTILES: tuple[tuple[str, str, float], ...] = (
    ("p50_latency_ms", "latency", 0.5),
    ("p95_latency_ms", "latency", 0.95),
    ("p99_latency_ms", "latency", 0.99),
    ("ttft_p50_ms", "ttft", 0.5),
    ("ttft_p95_ms", "ttft", 0.95),
    ("ttft_p99_ms", "ttft", 0.99),
    ("tpot_p50_ms", "tpot", 0.5),
    ("tpot_p95_ms", "tpot", 0.95),
    ("tpot_p99_ms", "tpot", 0.99),
)
#: The percentiles a ``light`` call of :func:`figures` computes (the others are NaN).
LIGHT = ("p99_latency_ms", "ttft_p95_ms")


def figures_from(
    n: int, errors: int, good: int, tokens: int, quantiles: dict[str, float], duration_s: float
) -> dict[str, Any]:
    """The dict of :func:`figures` from its counts and percentiles (``quantiles``, keyed as
    :data:`QUANTILES`): one place for the arithmetic, however the counts were gathered."""
    successes = n - errors
    rate = errors / n if n else math.nan
    per_s = duration_s if duration_s > 0 else math.nan
    out: dict[str, Any] = {
        "requests": n,
        "errors": errors,
        "successes": successes,
        "good": good,
        "error_rate": rate,
        "availability": 1.0 - rate,
    }
    out.update({key: quantiles[key] for key, _col, _q in QUANTILES})
    out.update(
        {
            "duration_s": float(duration_s),
            "throughput_rps": successes / per_s,
            "goodput_rps": good / per_s,
            "goodput_ratio": good / n if n else math.nan,
            "tokens_per_s": tokens / per_s,
        }
    )
    return out


def overall(
    df: pd.DataFrame,
    timeout_ms: float = DEFAULT_TIMEOUT_MS,
    *,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """Whole-run figures (see :func:`figures`; goodput here counts every success as good).

    ``duration_s`` is the load duration when given, else last request end minus first
    request start. Figures with nothing to measure are NaN (the scorecard makes them null).
    """
    n = len(df)
    if duration_s is None:
        duration_s = float(df["end"].max() - df["start"].min()) if n else 0.0
    return figures(RequestArrays.build(df, timeout_ms), None, float(duration_s))
