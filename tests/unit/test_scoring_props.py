"""Property tests of recovery analytics on random healthy traffic with one outage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.config import SLOSpec
from harness.scoring import build_scorecard

T0 = 1_700_000_000.0


def _traffic(
    rng: np.random.Generator, duration_s: float, rps: float, a: float, b: float, mode: str
) -> pd.DataFrame:
    """Healthy traffic (jittered, every second has completions); requests ending in [a, b)
    fail fast (mode 'fail') or never complete (mode 'none')."""
    spacing = 1.0 / rps
    starts = T0 + np.arange(0.0, duration_s, spacing) + rng.uniform(0, spacing / 2, 1)
    latency = rng.uniform(20.0, 300.0, starts.size)
    df = pd.DataFrame(
        {
            "start": starts,
            "end": starts + latency / 1000.0,
            "latency_ms": latency,
            "ttft_ms": latency / 5,
            "output_tokens": np.full(starts.size, 16, dtype=np.int64),
            "status": np.full(starts.size, 200, dtype=np.int64),
            "error": "",
            "replica": "r0",
            "phase": "baseline",
        }
    )
    rel = df["end"] - T0
    hit = (rel >= a) & (rel < b)
    if mode == "none":
        return df[~hit].reset_index(drop=True)
    df.loc[hit, "status"] = 503
    df.loc[hit, "error"] = "replica gone"
    return df


@settings(max_examples=60, deadline=None)
@given(
    a=st.floats(3.0, 40.0).map(lambda x: round(x, 2)),
    length=st.floats(2.0, 25.0).map(lambda x: round(x, 2)),
    rps=st.sampled_from([5.0, 10.0, 33.0, 80.0]),
    hold_s=st.integers(1, 5),
    mode=st.sampled_from(["fail", "none"]),
    seed=st.integers(0, 2**16),
)
def test_recovery_matches_outage(
    a: float, length: float, rps: float, hold_s: int, mode: str, seed: int
) -> None:
    b = a + length
    duration = b + hold_s + 10.0
    df = _traffic(np.random.default_rng(seed), duration, rps, a, b, mode)
    timeline = [
        {"time": T0, "kind": "load_start", "target": "", "details": {}},
        {"time": T0 + a, "kind": "fault_start", "target": "node-a", "details": {}},
        {"time": T0 + b, "kind": "fault_end", "target": "node-a", "details": {}},
        {"time": T0 + duration, "kind": "load_end", "target": "", "details": {}},
    ]
    slos = SLOSpec(p99_latency_ms=1000.0, error_rate=0.01, recovery_s=60.0, hold_s=hold_s)
    card = build_scorecard(df, timeline, slos, timeout_ms=30_000.0, meta={})
    json.dumps(card, allow_nan=False)
    rec = card["recovery"]
    assert rec["recovered"] is True
    assert abs(rec["time_to_recover_s"] - length) <= 1.0, rec
    assert rec["time_to_detect_s"] is not None and rec["time_to_detect_s"] <= 1.0, rec
    assert rec["degraded_s"] <= length + 2.0  # buckets overlapping [a, b)
    recovery_slo = next(s for s in card["slos"] if s["name"] == "recovery_s")
    assert recovery_slo["passed"] is True
