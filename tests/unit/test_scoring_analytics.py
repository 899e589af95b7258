"""Unit tests of the SLO spec, windows, TPOT, goodput, error budget, autoscaler reaction,
GPU figures, the 0-100 score and the edge cases, on synthetic logs with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harness.config import SLO_NAMES, SLOSpec
from harness.errors import ConfigError
from harness.experiment import load_experiment
from harness.records import COLUMNS
from harness.scoring import build_scorecard, per_second, scorecard_table
from harness.scoring.analytics import autoscaler_reaction, phase_windows
from harness.scoring.gpu import gpu_figures, read_telemetry
from harness.scoring.resilience import litmus_style
from harness.scoring.scorecard import SLO_ORDER
from harness.scoring.slis import RequestArrays, figures, tpot_ms

T0 = 1_700_000_000.0
TIMEOUT_MS = 30_000.0
ROOT = Path(__file__).resolve().parents[2]


def traffic(
    duration_s: float,
    rps: float = 20.0,
    *,
    outage: tuple[float, float] | None = None,
    latency_ms: float = 100.0,
    tokens: int = 16,
) -> pd.DataFrame:
    """Evenly spaced streaming traffic from T0; requests starting inside ``outage`` fail."""
    starts = T0 + np.arange(0.0, duration_s, 1.0 / rps)
    latency = np.full(starts.size, latency_ms)
    df = pd.DataFrame(
        {
            "start": starts,
            "end": starts + latency / 1000.0,
            "latency_ms": latency,
            "ttft_ms": latency / 4,
            "output_tokens": np.full(starts.size, tokens, dtype=np.int64),
            "status": np.full(starts.size, 200, dtype=np.int64),
            "error": "",
            "replica": "r0",
            "phase": "baseline",
        }
    )
    if outage is not None:
        hit = (df["start"] - T0 >= outage[0]) & (df["start"] - T0 < outage[1])
        df.loc[hit, "status"] = 503
        df.loc[hit, "error"] = "connection refused"
        df.loc[hit, "latency_ms"] = 5.0
        df.loc[hit, "end"] = df.loc[hit, "start"] + 0.005
        df.loc[hit, "ttft_ms"] = math.nan
        df.loc[hit, "output_tokens"] = 0
    return df


def ev(kind: str, t: float, target: str = "", **details: Any) -> dict[str, Any]:
    return {"time": T0 + t, "kind": kind, "target": target, "details": details}


def timeline(*extra: dict[str, Any], end: float = 60.0) -> list[dict[str, Any]]:
    return [ev("load_start", 0.0), *extra, ev("load_end", end)]


def score(
    df: pd.DataFrame,
    tl: list[dict[str, Any]],
    slos: SLOSpec,
    telemetry: pd.DataFrame | None = None,
) -> dict[str, Any]:
    card = build_scorecard(df, tl, slos, timeout_ms=TIMEOUT_MS, meta={}, telemetry=telemetry)
    json.dumps(card, allow_nan=False)
    return card


def slo(card: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in card["slos"] if s["name"] == name)


FAULT = (ev("fault_start", 30.0, "node-a"), ev("fault_end", 42.0, "node-a"))


# --- the SLO spec ------------------------------------------------------------------------


def test_slo_order_matches_spec() -> None:
    assert tuple(n for n, _, _ in SLO_ORDER) == SLO_NAMES
    assert set(SLO_NAMES) <= set(SLOSpec.model_fields)


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ({"p99_latency_ms": "sometimes"}, "expected run, baseline"),
        ({"p99_latncy_ms": "run"}, "unknown objective"),
        ({"recovery_s": "steady"}, "no window"),
        ({"error_rate": 0.5}, ">= 1 s"),
    ],
)
def test_slo_windows_rejected(windows: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SLOSpec(windows=windows)


def test_slo_spec_in_experiment_names_file_and_field(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "experiments/gpu-node-loss.yaml").read_text())
    ext = next(e for e in doc["extensions"] if e.get("name") == "gpuchaos")
    ext["slos"]["windows"] = {"p99_latency_ms": "stedy"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        load_experiment(str(bad), {})
    assert str(bad) in str(info.value) and "slos" in str(info.value)
    assert "stedy" in str(info.value)


def test_flat_slos_of_the_catalog_still_validate() -> None:
    exp = load_experiment(str(ROOT / "experiments/gpu-node-loss.yaml"), {})
    assert exp.spec.slos.p99_latency_ms == 1000
    assert exp.spec.slos.window("p99_latency_ms") == "run"


# --- TPOT and goodput --------------------------------------------------------------------


def test_tpot_known_answer() -> None:
    df = traffic(1.0, rps=4, latency_ms=100.0, tokens=16)  # ttft 25 -> (100-25)/15 = 5 ms
    df.loc[1, "output_tokens"] = 1  # one token: no TPOT
    df.loc[2, "ttft_ms"] = math.nan  # non-streaming: no TPOT
    values = tpot_ms(df)
    assert values.iloc[0] == pytest.approx(5.0)
    assert math.isnan(values.iloc[1]) and math.isnan(values.iloc[2])
    df.loc[3, "status"] = 500
    figs = figures(RequestArrays.build(df, TIMEOUT_MS), None, 1.0)
    assert figs["tpot_p50_ms"] == pytest.approx(np.percentile([5.0, TIMEOUT_MS], 50))


def test_goodput_counts_failed_and_slow_requests_as_violations() -> None:
    df = traffic(10.0, rps=10)  # 100 requests at 100 ms
    df.loc[:9, "latency_ms"] = 2000.0  # 10 slow successes
    df.loc[10:14, "status"] = 0  # 5 failures
    df.loc[10:14, "error"] = "timeout"
    slos = SLOSpec(p99_latency_ms=1000.0, goodput_rps=8.0)
    card = score(df, timeline(end=10.0), slos)
    assert card["run"]["good"] == 85
    assert card["goodput"]["goodput_rps"] == pytest.approx(8.5)
    assert card["goodput"]["thresholds"]["latency_ms"] == 1000.0
    assert slo(card, "goodput_rps")["passed"] is True
    assert card["run"]["throughput_rps"] == pytest.approx(9.5)
    # a server that refuses everything fast has no goodput
    refused = traffic(10.0, rps=10, outage=(0.0, 10.0))
    assert score(refused, timeline(end=10.0), slos)["run"]["goodput_rps"] == 0.0


# --- windows and phases ------------------------------------------------------------------


def test_phases_from_the_timeline() -> None:
    rec = {"recovered": True, "time_to_recover_s": 14.0}
    ph = phase_windows(T0, T0 + 60, T0 + 30, T0 + 42, rec)
    assert ph["baseline"] == (T0, T0 + 30) and ph["fault"] == (T0 + 30, T0 + 42)
    assert ph["recovery"] == (T0 + 42, T0 + 44) and ph["steady"] == (T0 + 44, T0 + 60)
    never = phase_windows(T0, T0 + 60, T0 + 30, None, {"recovered": False})
    assert never["fault"] == (T0 + 30, T0 + 60) and never["steady"] is None
    none = phase_windows(T0, T0 + 60, None, None, {"fault": False})
    assert none["baseline"] == none["steady"] == (T0, T0 + 60) and none["fault"] is None


def test_windowed_slos_steady_fault_and_load_phase() -> None:
    df = traffic(60.0, outage=(30.0, 42.0))
    tl = timeline(
        ev("phase", 0.0, "load", phase="baseline"),
        ev("phase", 20.0, "load", phase="spike"),
        *FAULT,
        ev("phase", 50.0, "load", phase="baseline"),
    )
    slos = SLOSpec(
        error_rate=0.01,
        p99_latency_ms=1000.0,
        availability=0.5,
        windows={"error_rate": "steady", "p99_latency_ms": "load:spike", "availability": "fault"},
    )
    card = score(df, tl, slos)
    er = slo(card, "error_rate")
    assert er["window"] == "steady" and er["measured"] == 0.0 and er["passed"] is True
    p99 = slo(card, "p99_latency_ms")  # the spike (20-50 s) holds the outage
    assert p99["window"] == "load:spike" and p99["measured"] == TIMEOUT_MS
    avail = slo(card, "availability")  # every request in the fault failed
    assert avail["measured"] == pytest.approx(0.0, abs=0.01) and avail["passed"] is False
    assert card["phases"]["fault"]["error_rate"] == pytest.approx(1.0, abs=0.01)
    assert card["phases"]["baseline"]["error_rate"] == 0.0
    assert [p["name"] for p in card["phases"]["load"]] == ["baseline", "spike", "baseline"]
    table = scorecard_table(card)
    assert "[steady]" in table and "[load:spike]" in table


def test_steady_window_empty_when_never_recovered() -> None:
    df = traffic(60.0, outage=(30.0, 1e9))
    slos = SLOSpec(error_rate=0.01, windows={"error_rate": "steady"})
    card = score(df, timeline(ev("fault_start", 30.0, "node-a")), slos)
    er = slo(card, "error_rate")
    assert er["passed"] is False and er["measured"] is None and "did not recover" in er["note"]
    assert card["verdict"] == "fail"


def test_missing_load_phase_fails_with_note() -> None:
    slos = SLOSpec(p99_latency_ms=1000.0, windows={"p99_latency_ms": "load:spike"})
    entry = slo(score(traffic(10.0), timeline(end=10.0), slos), "p99_latency_ms")
    assert entry["passed"] is False and "no load phase 'spike'" in entry["note"]


def test_rolling_window_finds_the_worst_stretch() -> None:
    df = traffic(60.0, outage=(30.0, 33.0))  # 3 s of failures in 60 s: 5% overall
    slos = SLOSpec(error_rate=0.2, windows={"error_rate": 10})
    entry = slo(score(df, timeline(), slos), "error_rate")
    assert entry["window"] == "rolling 10s"
    assert entry["measured"] == pytest.approx(0.3, abs=0.01)  # 3 bad seconds of 10
    assert entry["passed"] is False
    assert 23.0 <= entry["worst_window_start_s"] <= 30.0
    p99 = slo(
        score(df, timeline(), SLOSpec(p99_latency_ms=500, windows={"p99_latency_ms": 5})),
        "p99_latency_ms",
    )
    assert p99["measured"] == TIMEOUT_MS and p99["passed"] is False


def test_clock_gap_counts_as_zero_throughput_and_breach() -> None:
    df = traffic(60.0)
    df = df[(df["end"] - T0 < 20.0) | (df["end"] - T0 >= 25.0)]  # 5 s with no data
    slos = SLOSpec(
        throughput_rps=10.0, p99_latency_ms=1000.0, hold_s=2, windows={"throughput_rps": 5}
    )
    card = score(df, timeline(ev("fault_start", 20.0, "n"), ev("fault_end", 22.0, "n")), slos)
    assert slo(card, "throughput_rps")["measured"] == 0.0
    rec = card["recovery"]
    assert rec["time_to_detect_s"] == 0.0 and rec["time_to_recover_s"] == pytest.approx(5.0)
    assert rec["worst_throughput_ratio"] == 0.0
    ps = per_second(df, T0, TIMEOUT_MS)
    assert ps["requests"].iloc[20:25].eq(0).all()


# --- error budget ------------------------------------------------------------------------


def test_error_budget_known_answer() -> None:
    df = traffic(50.0, rps=20)  # 1000 requests
    df.loc[df.index[600:605], "status"] = 500  # 5 failures
    card = score(df, timeline(end=50.0), SLOSpec(availability=0.99))
    b = card["error_budget"]
    assert b["objective"] == 0.99 and b["budget"] == pytest.approx(0.01)
    assert b["requests"] == 1000 and b["failed"] == 5 and b["allowed_failures"] == 10.0
    assert b["spent"] == pytest.approx(0.5) and b["remaining"] == pytest.approx(0.5)
    assert b["burn_rate"] == pytest.approx(0.5)
    assert card["score"]["components"]["error_budget"] == pytest.approx(0.5)


def test_error_budget_burn_rate_by_phase_and_error_rate_objective() -> None:
    df = traffic(60.0, outage=(30.0, 36.0))  # 120 of 1200 fail, all during the fault
    card = score(df, timeline(*FAULT), SLOSpec(error_rate=0.05))
    b = card["error_budget"]
    assert b["from"] == "error_rate" and b["objective"] == pytest.approx(0.95)
    assert b["spent"] == pytest.approx((120 / 1200) / 0.05)
    assert b["spent"] > 1.0  # overspent
    by = b["burn_rate_by_phase"]
    assert by["baseline"] == 0.0
    assert by["fault"] == pytest.approx((120 / 240) / 0.05, rel=0.05)
    assert card["score"]["components"]["error_budget"] == 0.0


def test_zero_error_budget_and_no_objective() -> None:
    df = traffic(10.0)
    ok = score(df, timeline(end=10.0), SLOSpec(availability=1.0))["error_budget"]
    assert ok["spent"] == 0.0 and "no error budget" in ok["note"]
    df.loc[3, "status"] = 500
    bad = score(df, timeline(end=10.0), SLOSpec(availability=1.0))
    assert bad["error_budget"]["spent"] is None
    assert bad["score"]["components"]["error_budget"] == 0.0
    none = score(df, timeline(end=10.0), SLOSpec())["error_budget"]
    assert none["objective"] is None and "no availability" in none["note"]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 400),
    bad=st.integers(0, 400),
    target=st.floats(0.5, 0.999),
    seed=st.integers(0, 2**16),
)
def test_error_budget_and_goodput_properties(n: int, bad: int, target: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    df = traffic(20.0, rps=n / 20.0)
    failed = rng.choice(len(df), size=min(bad, len(df)), replace=False)
    df.loc[df.index[failed], "status"] = 503
    slos = SLOSpec(availability=target, p99_latency_ms=1000.0, recovery_s=10.0)
    card = score(df, timeline(end=20.0), slos)
    b = card["error_budget"]
    expected = (len(failed) / len(df)) / (1 - target)
    assert b["spent"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert b["burn_rate"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert card["run"]["goodput_rps"] <= card["run"]["throughput_rps"] + 1e-9
    assert 0.0 <= card["score"]["value"] <= 100.0


# --- autoscaler --------------------------------------------------------------------------


def test_autoscaler_reaction() -> None:
    tl = timeline(
        ev("phase", 20.0, "load", phase="spike"),
        ev("scale", 10.0, "deployment", direction="down", **{"from": 3, "to": 2}),
        ev("replica_ready", 21.0, "node-a-0"),
        ev("scale", 26.5, "deployment", replica="node-b-1", **{"from": 2, "to": 3}),
        ev("replica_ready", 28.0, "node-a-0"),
        ev("replica_ready", 31.0, "node-b-1"),
    )
    auto = autoscaler_reaction(tl, T0)
    assert auto["autoscaler"] is True and auto["scale_events"] == 2
    # the local autoscaler's events: steady decisions are not scale-ups, added names the replica
    local = timeline(
        ev("phase", 20.0, "load", phase="spike"),
        ev("scale", 22.0, "autoscaler", outcome="steady", added=[], **{"from": 2, "to": 2}),
        ev("scale", 24.0, "autoscaler", outcome="no capacity", desired=3, **{"from": 2, "to": 2}),
        ev("replica_ready", 25.0, "node-a-0"),
        ev("scale", 27.0, "autoscaler", added=["node-b-1"], **{"from": 2, "to": 3}),
        ev("replica_ready", 30.0, "node-b-1"),
    )
    seen = autoscaler_reaction(local, T0)
    assert seen["decision_s"] == pytest.approx(4.0)  # the first decision to scale up
    assert seen["replica_ready_s"] == pytest.approx(5.0)
    assert auto["spike_start_s"] == 20.0
    assert auto["decision_s"] == pytest.approx(6.5)
    assert auto["replica_ready_s"] == pytest.approx(11.0)
    assert auto["scale_to_ready_s"] == pytest.approx(4.5)


def test_no_autoscaler_is_said_so() -> None:
    card = score(traffic(10.0), timeline(end=10.0), SLOSpec(p99_latency_ms=1000.0))
    assert card["autoscaler"]["autoscaler"] is False
    assert "no autoscaler" in card["autoscaler"]["note"]
    assert "no autoscaler" in scorecard_table(card)
    late = autoscaler_reaction(timeline(ev("scale", 5.0, "d"), end=10.0), T0)
    assert late["decision_s"] == 5.0 and "no spike phase" in late["note"]
    assert late["replica_ready_s"] is None


# --- GPU ---------------------------------------------------------------------------------


def test_gpu_utilization_idle_and_cost(tmp_path: Path) -> None:
    rows = ["time,source,metric,value"]
    for s in range(100):
        rows.append(f"{T0 + s},gpu0,utilization_pct,{80 if s < 50 else 20}")
        rows.append(f"{T0 + s},gpu1,utilization_pct,10")
        rows.append(f"{T0 + s},gpu1,memory_used_mib,1000")
        rows.append(f"{T0 + s},system,cpu_pct,50")
    rows.append(f"{T0 + 500},gpu0,utilization_pct,100")  # after the load: ignored
    path = tmp_path / "telemetry.csv"
    path.write_text("\n".join(rows) + "\n17000001,gpu0,utiliz")  # torn last line
    tel = read_telemetry(path)
    gpu = gpu_figures(tel, T0, T0 + 100, price_per_gpu_hour=3.6)
    assert gpu["gpus"] == 2
    assert gpu["per_gpu_utilization_pct"] == {"gpu0": 50.0, "gpu1": 10.0}
    assert gpu["utilization_pct"] == pytest.approx(30.0)
    assert gpu["gpu_seconds"] == 200.0
    assert gpu["idle_gpu_s"] == pytest.approx(50.0 + 90.0)
    assert gpu["cost"] == pytest.approx(0.2) and gpu["idle_cost"] == pytest.approx(0.14)
    assert "under 60%" in gpu["note"]


def test_no_gpu_telemetry_is_said_so() -> None:
    cpu = pd.DataFrame(
        {"time": [T0, T0 + 1], "source": ["system"] * 2, "metric": ["cpu_pct"] * 2,
         "value": [10.0, 20.0]}
    )  # fmt: skip
    for tel in (None, cpu):
        gpu = gpu_figures(tel, T0, T0 + 10, price_per_gpu_hour=2.0)
        assert gpu["gpus"] == 0 and gpu["idle_gpu_s"] is None and gpu["cost"] is None
        assert gpu["note"].startswith("no GPU telemetry")
    card = score(traffic(10.0), timeline(end=10.0), SLOSpec(), telemetry=cpu)
    assert "no GPU telemetry" in scorecard_table(card)


# --- score -------------------------------------------------------------------------------


def test_score_weighs_recovery_time_and_budget() -> None:
    df = traffic(60.0, outage=(30.0, 36.0))
    slos = SLOSpec(error_rate=0.3, p99_latency_ms=50_000.0, recovery_s=20.0, hold_s=2)
    card = score(df, timeline(*FAULT), slos)
    comp = card["score"]["components"]
    ttr = card["recovery"]["time_to_recover_s"]
    assert ttr == pytest.approx(6.0, abs=1.0)
    assert comp["slos"] == 1.0
    assert comp["recovery"] == pytest.approx(1 - ttr / 40.0)
    assert comp["error_budget"] == pytest.approx(1 - 0.1 / 0.3)
    expected = 100 * (0.5 * 1 + 0.25 * comp["recovery"] + 0.25 * comp["error_budget"])
    assert card["score"]["value"] == pytest.approx(expected, abs=0.06)
    assert card["score"]["krkn_style"] == 100.0
    # a slower recovery scores lower although every SLO still passes
    slower = score(traffic(60.0, outage=(30.0, 45.0)), timeline(*FAULT), slos)
    assert slower["verdict"] == "pass"
    assert slower["score"]["value"] < card["score"]["value"]


def test_score_weights_and_never_recovered() -> None:
    df = traffic(60.0, outage=(30.0, 1e9))
    slos = SLOSpec(
        p99_latency_ms=50_000.0, error_rate=0.01, recovery_s=20.0, weights={"error_rate": 3}
    )
    card = score(df, timeline(ev("fault_start", 30.0, "node-a")), slos)
    comp = card["score"]["components"]
    assert comp["recovery"] == 0.0 and comp["error_budget"] == 0.0
    assert comp["slos"] == pytest.approx(1 / 5)  # p99 passes (1) of 1 + 3 + 1
    assert card["score"]["krkn_style"] == 20.0
    assert card["verdict"] == "fail" and "not recovered" in scorecard_table(card)


def test_litmus_style_from_journal() -> None:
    journal = {
        "steady_states": {
            "before": {"probes": [{"tolerance_met": True}]},
            "after": {"probes": [{"tolerance_met": False}]},
        },
        "run": [
            {"activity": {"type": "probe"}, "status": "succeeded"},
            {"activity": {"type": "action"}, "status": "succeeded"},
            {"activity": {"type": "probe"}, "status": "failed"},
        ],
    }
    assert litmus_style(journal) == 50.0
    assert litmus_style(None) is None and litmus_style({"run": []}) is None


# --- edge cases --------------------------------------------------------------------------


def test_no_requests_at_all_scores_zero() -> None:
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    empty["error"] = pd.Series(dtype="str")
    slos = SLOSpec(availability=0.99, goodput_rps=1.0, windows={"goodput_rps": 5})
    card = score(empty, timeline(*FAULT), slos)
    assert card["score"]["value"] == 0.0 and card["score"]["note"] == "no requests recorded"
    assert card["error_budget"]["spent"] is None
    assert card["verdict"] == "fail"
    assert all(s["measured"] is None for s in card["slos"])
    scorecard_table(card)


def test_fault_never_injected_and_aborted_run() -> None:
    slos = SLOSpec(recovery_s=20.0, error_rate=0.01, windows={"error_rate": "fault"})
    card = score(traffic(30.0), timeline(end=30.0), slos)
    assert card["recovery"] == {"fault": False}
    assert "no fault was injected" in slo(card, "error_rate")["note"]
    assert card["phases"]["fault"] is None and card["score"]["components"]["recovery"] is None
    assert "never injected" in scorecard_table(card)
    tl = timeline(ev("fault_start", 10.0, "node-a"), ev("abort", 12.0, reason="SIGTERM"))
    aborted = score(traffic(12.0, outage=(10.0, 12.0)), tl, slos)
    assert aborted["verdict"] == "aborted" and aborted["exit_code"] == 2
    assert aborted["recovery"]["recovered"] is False
    assert aborted["score"]["value"] is not None


def test_rescheduling_a_lost_node_is_not_an_autoscaler() -> None:
    timeline = [
        {"time": 100.0, "kind": "phase", "target": "load", "details": {"phase": "spike"}},
        {"time": 105.0, "kind": "scale", "target": "scheduler",
         "details": {"reason": "node node-a down", "rescheduled": [], "pending": ["node-a-0"]}},
    ]  # fmt: skip
    result = autoscaler_reaction(timeline, 90.0)
    assert result["autoscaler"] is False
