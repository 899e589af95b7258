"""GPU figures from the telemetry: reading ``telemetry.csv``, utilization, idle GPU-seconds, cost.

Why a module of its own: the scorer and the report read the same telemetry file through
:func:`read_telemetry`, one reader with one set of rules for torn and bad lines.

Definitions:

- **GPU utilization**: ``utilization_pct`` samples of sources ``gpu0``, ``gpu1``, ... in
  ``telemetry.csv`` within the load. Per GPU the mean of its samples; ``gpu_seconds`` = GPUs
  x load duration; ``idle_gpu_s`` = sum over GPUs of load duration x (1 - mean/100) (gaps
  between samples are assumed to look like the samples). With ``price_per_gpu_hour``:
  ``cost`` = price x gpu_seconds / 3600 and ``idle_cost`` = price x idle_gpu_s / 3600.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import ScoringError

#: Columns of ``telemetry.csv``.
COLUMNS: tuple[str, ...] = ("time", "source", "metric", "value")

_GPU_SOURCE = re.compile(r"^gpu\d+$")


def _no_samples() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="float64" if c in ("time", "value") else "str") for c in COLUMNS}
    )


def read_telemetry(path: str | os.PathLike[str], *, missing_ok: bool = False) -> pd.DataFrame:
    """``telemetry.csv`` (``time,source,metric,value``); bad or torn lines, and samples whose
    time or value is not a finite number, are skipped; an empty file has no samples.

    A missing or unreadable file raises :class:`ScoringError`; with ``missing_ok`` a missing
    file gives a frame without rows (a report still shows a run that sampled nothing)."""
    if missing_ok and not os.path.isfile(path):
        return _no_samples()
    try:
        frame = pd.read_csv(
            path,
            usecols=list(COLUMNS),
            dtype={"source": "str", "metric": "str"},
            on_bad_lines="skip",
            engine="c",
            encoding_errors="replace",
        )
    except pd.errors.EmptyDataError:
        return _no_samples()
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ScoringError(f"{os.fspath(path)}: unreadable telemetry: {exc}") from exc
    for col in ("time", "value"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    finite = np.isfinite(frame[["time", "value"]].to_numpy(dtype="float64")).all(axis=1)
    return frame[finite]


def gpu_figures(
    telemetry: pd.DataFrame | None,
    t0: float,
    load_end: float,
    price_per_gpu_hour: float | None,
) -> dict[str, Any]:
    """GPU utilization, idle GPU-seconds and cost (see module)."""
    result: dict[str, Any] = {"price_per_gpu_hour": price_per_gpu_hour}
    if telemetry is None or telemetry.empty:
        samples = pd.DataFrame(columns=["time", "source", "value"])
    else:
        inside = (
            (telemetry["metric"] == "utilization_pct")
            & telemetry["source"].astype("str").str.match(_GPU_SOURCE)
            & (telemetry["time"] >= t0)
            & (telemetry["time"] <= load_end)
        )
        samples = telemetry.loc[inside, ["time", "source", "value"]]
    if samples.empty:
        result.update(gpus=0, utilization_pct=None, idle_gpu_s=None, cost=None, idle_cost=None)
        result["note"] = "no GPU telemetry (no gpuN utilization_pct samples during the load)"
        return result
    duration = max(0.0, load_end - t0)
    per_gpu = samples.groupby("source")["value"].mean().clip(0.0, 100.0).sort_index()
    gpu_seconds = duration * len(per_gpu)
    idle = float((duration * (1.0 - per_gpu / 100.0)).sum())
    result.update(
        gpus=len(per_gpu),
        samples=len(samples),
        utilization_pct=float(per_gpu.mean()),
        per_gpu_utilization_pct={str(k): float(v) for k, v in per_gpu.items()},
        gpu_seconds=gpu_seconds,
        idle_gpu_s=idle,
    )
    if price_per_gpu_hour is None:
        result.update(cost=None, idle_cost=None)
    else:
        result.update(
            cost=price_per_gpu_hour * gpu_seconds / 3600.0,
            idle_cost=price_per_gpu_hour * idle / 3600.0,
        )
    if float(per_gpu.mean()) < 60.0:
        result["note"] = "mean GPU utilization under 60%: capacity paid for and idle"
    return result
