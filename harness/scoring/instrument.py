"""Is the load generator the bottleneck? The scorecard's ``instrument`` section.

Why a module of its own: a Locust process that runs out of CPU sends late and reads
answers late, so the latency it records is partly the client's own. The harness samples
each local Locust process's CPU (``telemetry.csv``: sources ``locust`` and
``locust-worker-N``, metric ``cpu_percent``) and the open-loop generator records its lag
per request (``requests.csv``: ``lag_ms``, scheduled time to dispatch); this module says in
which seconds of the load either one shows a saturated instrument, from the run folder
alone (``gpuchaos score`` reproduces it).

Definitions (thresholds in :data:`CPU_SATURATED_PERCENT` and :data:`LAG_P95_MS`):

- The load's seconds are ``0 .. ceil(end - t0) - 1``, ``end`` the end of the load shape
  (the scorecard passes ``t0`` + the shape's duration, or the load end when that came
  first: Locust's shutdown sends nothing); second ``s`` is ``[t0 + s, t0 + s + 1)``.
- A CPU sample stands for the time since the previous sample of the same process (the
  first one of a process: its usual gap). It is **saturated** above
  :data:`CPU_SATURATED_PERCENT` of one core. A second is **CPU-affected** when saturated
  samples of one process cover at least half of it.
- A second is **lag-affected** when the 95th percentile of ``lag_ms`` over the arrivals
  scheduled in it (their ``start``) exceeds :data:`LAG_P95_MS`.
- ``affected_s``: seconds CPU- or lag-affected; ``windows``: runs of consecutive affected
  seconds (``start_s``, ``end_s`` from ``t0``, what the report shades); ``peak_cpu_percent``:
  the highest sample over the load; ``peak_lag_ms``: the highest ``lag_ms`` of an arrival
  scheduled within the load.
- ``sampled``: whether any Locust CPU sample fell within the load (false when Locust ran as
  Kubernetes Jobs, or for a run folder from before this check); ``lag_recorded``: whether
  any arrival of the load has a ``lag_ms`` (open loop only).
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import ScoringError
from harness.scoring.lenient import lenient_frame
from harness.scoring.slis import _complete_length, _Prefix  # the scorer's torn-line rule

#: Why 90%: Locust is one gevent loop on one core, and it warns itself ("CPU usage above
#: 90%") from there on; past it, greenlets wait for the loop, so sends and the reading of
#: answers (TTFT, latency) are late by the client's doing.
CPU_SATURATED_PERCENT = 90.0
#: Why 100 ms: an unloaded generator dispatches within a few milliseconds of the schedule
#: (gevent timer jitter); a p95 lag of 100 ms in a second means it fell behind the rate it
#: was asked for, by as much as a typical latency objective allows for the whole request.
LAG_P95_MS = 100.0
#: The CPU samples of the load generator's processes (see harness.telemetry.sampler).
LOCUST_SOURCE = re.compile(r"^locust(-worker-\d+)?$")
CPU_METRIC = "cpu_percent"
LAG_COLUMN = "lag_ms"


def read_lag(path: str | os.PathLike[str]) -> pd.DataFrame | None:
    """``start`` and ``lag_ms`` of the rows of ``requests.csv`` that have a lag; ``None``
    when the file or its ``lag_ms`` column is missing (closed loop writes it empty; older
    run folders lack it). A torn last line (a run killed mid-write), rows with a value that
    is not a finite number and damaged rows are left out, as the scorer's own reader does
    (:func:`harness.scoring.slis.read_requests`)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ScoringError(f"{os.fspath(path)}: cannot read request log: {exc}") from exc
    with fh:
        if not has_lag(fh.readline()):
            return None
        length = _complete_length(fh, os.fstat(fh.fileno()).st_size)
        fh.seek(0)
        return parse_lag(io.BufferedReader(_Prefix(fh, length), buffer_size=1 << 20), path)


def has_lag(header: bytes) -> bool:
    """Whether the header line of ``requests.csv`` names ``start`` and ``lag_ms``."""
    names = header.decode("utf-8", errors="replace").strip().split(",")
    return LAG_COLUMN in names and "start" in names


def parse_lag(reader: Any, path: str | os.PathLike[str]) -> pd.DataFrame:
    """``start`` and ``lag_ms`` of the complete lines in ``reader`` (a seekable binary
    file, header first) by the rules of :func:`read_lag`; a log read in blocks calls it
    for each block, its header put in front."""
    try:
        frame = pd.read_csv(
            reader,
            usecols=["start", LAG_COLUMN],
            dtype="float64",
            keep_default_na=False,
            na_values={"start": [""], LAG_COLUMN: [""]},
            on_bad_lines="skip",
            engine="c",
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        # a damaged row: read row by row, as the scorer's reader does (it warns of it)
        reader.seek(0)
        frame = lenient_frame(reader.read(), path, ("start", LAG_COLUMN), None)
        frame = frame[["start", LAG_COLUMN]]
    finite = np.isfinite(frame.to_numpy(dtype="float64")).all(axis=1)
    return frame[finite].reset_index(drop=True)


#: The lag figures of a load's seconds, for a log read in parts: a function of ``t0`` and
#: the number of seconds giving which seconds are lag-affected, the peak lag (None when no
#: arrival falls in them) and whether any did.
LagSummary = Callable[[float, int], tuple[np.ndarray, float | None, bool]]


def lag_summary(
    lag: pd.DataFrame | None, t0: float, seconds: int
) -> tuple[np.ndarray, float | None, bool]:
    """:data:`LagSummary` of the rows of :func:`read_lag`."""
    lag = lag if lag is not None else pd.DataFrame({"start": [], LAG_COLUMN: []})
    lag = lag[(lag["start"] >= t0) & (lag["start"] < t0 + seconds)]
    peak = float(lag[LAG_COLUMN].max()) if len(lag) else None
    return lag_affected(lag, t0, seconds), peak, bool(len(lag))


def _seconds(t0: float, load_end: float) -> int:
    return max(0, math.ceil(load_end - t0 - 1e-9))


def _cpu_samples(telemetry: pd.DataFrame | None) -> pd.DataFrame:
    """The Locust CPU rows (time, source, value), each with the span it stands for."""
    cols = ["time", "source", "value", "since"]
    if telemetry is None or telemetry.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
    pick = (telemetry["metric"] == CPU_METRIC) & telemetry["source"].astype("str").str.match(
        LOCUST_SOURCE
    )
    rows = telemetry.loc[pick, ["time", "source", "value"]].sort_values(["source", "time"])
    gaps = rows.groupby("source")["time"].diff()
    usual = gaps.groupby(rows["source"]).transform("median").fillna(1.0)
    rows = rows.assign(since=rows["time"] - gaps.fillna(usual).clip(lower=1e-3))
    return rows.reset_index(drop=True)


def _cpu_affected(samples: pd.DataFrame, t0: float, seconds: int) -> np.ndarray:
    """Per second of the load: whether saturated samples of one process cover half of it."""
    affected = np.zeros(seconds, dtype=bool)
    hot = samples[samples["value"] > CPU_SATURATED_PERCENT]
    for _source, rows in hot.groupby("source"):
        cover = np.zeros(seconds)
        for begin, end in zip(rows["since"] - t0, rows["time"] - t0, strict=True):
            first, last = max(0, math.floor(begin)), min(seconds - 1, math.floor(end))
            for s in range(first, last + 1):
                cover[s] += max(0.0, min(end, s + 1.0) - max(begin, float(s)))
        affected |= cover >= 0.5 - 1e-9
    return affected


def lag_affected(lag: pd.DataFrame, t0: float, seconds: int) -> np.ndarray:
    """Per second of the load: whether the p95 lag of its arrivals passes the threshold."""
    affected = np.zeros(seconds, dtype=bool)
    if lag.empty:
        return affected
    second = np.floor(lag["start"].to_numpy() - t0).astype("int64")
    p95 = lag[LAG_COLUMN].groupby(second).quantile(0.95)
    for s, value in p95.items():
        if value > LAG_P95_MS:
            affected[int(s)] = True
    return affected


def _windows(affected: np.ndarray) -> list[dict[str, int]]:
    out: list[dict[str, int]] = []
    for s in np.flatnonzero(affected).tolist():
        if out and out[-1]["end_s"] == s:
            out[-1]["end_s"] = s + 1
        else:
            out.append({"start_s": s, "end_s": s + 1})
    return out


def warning_text(affected_s: int, peak_cpu: float | None, peak_lag: float | None) -> str:
    """The plain-words warning of a saturated instrument."""
    peaks = []
    if peak_cpu is not None:
        peaks.append(f"peak CPU {peak_cpu:.0f}% of a core")
    if peak_lag is not None:
        peaks.append(f"peak lag {peak_lag:.0f} ms")
    also = f" ({', '.join(peaks)})" if peaks else ""
    return (
        f"the load generator was saturated for {affected_s} s{also}: latency in those seconds "
        "may be the client's, not the server's; add load.workers, use shorter prompts, or a "
        "bigger client machine"
    )


def instrument_figures(
    telemetry: pd.DataFrame | None,
    lag: pd.DataFrame | LagSummary | None,
    t0: float,
    load_end: float,
) -> dict[str, Any]:
    """The ``instrument`` section of the scorecard (see module); ``lag`` is the frame of
    :func:`read_lag`, or a :data:`LagSummary` of a log read in parts."""
    seconds = _seconds(t0, load_end)
    samples = _cpu_samples(telemetry)
    samples = samples[(samples["time"] > t0) & (samples["since"] < t0 + seconds)]
    late, peak_lag, lag_recorded = (
        lag(t0, seconds) if callable(lag) else lag_summary(lag, t0, seconds)
    )
    cpu = _cpu_affected(samples, t0, seconds)
    affected = cpu | late
    peak_cpu = float(samples["value"].max()) if len(samples) else None
    result: dict[str, Any] = {
        "sampled": bool(len(samples)),
        "lag_recorded": lag_recorded,
        "thresholds": {"cpu_percent": CPU_SATURATED_PERCENT, "lag_p95_ms": LAG_P95_MS},
        "saturated": bool(affected.any()),
        "affected_s": int(affected.sum()),
        "cpu_affected_s": int(cpu.sum()),
        "lag_affected_s": int(late.sum()),
        "peak_cpu_percent": peak_cpu,
        "peak_cpu_source": (
            str(samples.loc[samples["value"].idxmax(), "source"]) if len(samples) else None
        ),
        "peak_lag_ms": peak_lag,
        "windows": _windows(affected),
        "warning": None,
    }
    if affected.any():
        result["warning"] = warning_text(int(affected.sum()), peak_cpu, peak_lag)
    if not len(samples):
        result["note"] = (
            "no CPU sample of a local Locust process during the load (Locust ran as "
            "Kubernetes Jobs, or the run folder predates the check)"
        )
    return result
