"""Unit tests of harness.scoring on synthetic request logs with known answers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.config import SLOSpec
from harness.errors import ScoringError
from harness.records import COLUMNS, format_row
from harness.scoring import (
    PER_SECOND_COLUMNS,
    analyze_recovery,
    build_scorecard,
    fault_windows,
    holding_seconds,
    overall,
    per_second,
    read_requests,
    scorecard_table,
    write_per_second,
)

T0 = 1_700_000_000.0
TIMEOUT_MS = 30_000.0


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A requests DataFrame as read_requests returns it, from partial records."""
    full = []
    for r in rows:
        start = r.get("start", T0)
        latency = r.get("latency_ms", 100.0)
        full.append(
            {
                "start": start,
                "end": r.get("end", start + latency / 1000.0),
                "latency_ms": latency,
                "ttft_ms": r.get("ttft_ms", math.nan),
                "output_tokens": r.get("output_tokens", 16),
                "status": r.get("status", 200),
                "error": r.get("error", ""),
                "replica": r.get("replica", "r0"),
                "phase": r.get("phase", "baseline"),
            }
        )
    if not full:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS}).assign(
            error=pd.Series(dtype="str"),
            replica=pd.Series(dtype="str"),
            phase=pd.Series(dtype="str"),
        )
    return pd.DataFrame(full, columns=list(COLUMNS))


def traffic(
    duration_s: float,
    rps: float = 20.0,
    *,
    outage: tuple[float, float] | None = None,
    mode: str = "fail",
    by: str = "end",
    latency_ms: float = 100.0,
) -> pd.DataFrame:
    """Evenly spaced healthy streaming traffic from T0; inside ``outage`` (offsets from T0,
    by request end or start) requests fail fast (mode 'fail') or never complete ('none')."""
    starts = T0 + np.arange(0.0, duration_s, 1.0 / rps)
    latency = np.full(starts.size, latency_ms)
    df = pd.DataFrame(
        {
            "start": starts,
            "end": starts + latency / 1000.0,
            "latency_ms": latency,
            "ttft_ms": latency / 4,
            "output_tokens": np.full(starts.size, 16, dtype=np.int64),
            "status": np.full(starts.size, 200, dtype=np.int64),
            "error": "",
            "replica": "r0",
            "phase": "baseline",
        }
    )
    if outage is None:
        return df
    a, b = outage
    ref = (df["end"] if by == "end" else df["start"]) - T0
    hit = (ref >= a) & (ref < b)
    if mode == "none":
        return df[~hit].reset_index(drop=True)
    df.loc[hit, "status"] = 503
    df.loc[hit, "error"] = "connection refused"
    df.loc[hit, "latency_ms"] = 5.0
    df.loc[hit, "end"] = df.loc[hit, "start"] + 0.005
    df.loc[hit, "ttft_ms"] = math.nan
    df.loc[hit, "output_tokens"] = 0
    return df


def events(*items: tuple[str, float, str], **details: Any) -> list[dict[str, Any]]:
    return [
        {"time": T0 + t, "kind": k, "target": target, "details": dict(details)}
        for k, t, target in items
    ]


def write_csv(path: Path, rows: list[dict[str, Any]], tail: str = "") -> Path:
    text = format_row(dict(zip(COLUMNS, COLUMNS, strict=True)))
    text += "".join(format_row(r) for r in rows)
    path.write_text(text + tail, encoding="utf-8")
    return path


# --- reading -----------------------------------------------------------------------------


def test_read_requests_dtypes_and_empty_cells(tmp_path: Path) -> None:
    rows = [
        {"start": T0, "end": T0 + 0.2, "latency_ms": 200.0, "ttft_ms": 20.0,
         "output_tokens": 16, "status": 200, "error": None, "replica": "r1", "phase": "baseline"},
        {"start": T0 + 1, "end": T0 + 1.5, "latency_ms": 500.0, "ttft_ms": None,
         "output_tokens": 0, "status": 0, "error": "timeout, read", "replica": None,
         "phase": "spike"},
    ]  # fmt: skip
    df = read_requests(write_csv(tmp_path / "requests.csv", rows))
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 2
    assert df["start"].dtype == np.float64 and df["ttft_ms"].dtype == np.float64
    assert df["status"].dtype == np.int64 and df["output_tokens"].dtype == np.int64
    assert df["error"].tolist() == ["", "timeout, read"]
    assert df["replica"].tolist() == ["r1", ""]
    assert df["ttft_ms"].iloc[0] == 20.0 and math.isnan(df["ttft_ms"].iloc[1])
    assert df["start"].iloc[0] == T0


@pytest.mark.parametrize(
    "tail",
    [
        "1700000009.0,17000",  # cut inside a number
        '1700000009.0,1700000009.1,100.0,,16,500,"Server Error: tor',  # cut inside a quote
        "1700000009.0,1700000009.1,100.0,25.0,16,200,,r0,basel",  # all fields, no newline
    ],
)
def test_read_requests_skips_torn_last_line(tmp_path: Path, tail: str) -> None:
    rows = [
        {"start": T0 + i, "end": T0 + i + 0.1, "latency_ms": 100.0, "output_tokens": 16,
         "status": 200, "replica": "r0", "phase": "baseline"}
        for i in range(5)
    ]  # fmt: skip
    df = read_requests(write_csv(tmp_path / "requests.csv", rows, tail=tail))
    assert len(df) == 5
    assert df["end"].max() == pytest.approx(T0 + 4.1)


def test_read_requests_header_only_and_empty_file(tmp_path: Path) -> None:
    assert len(read_requests(write_csv(tmp_path / "a.csv", []))) == 0
    empty = tmp_path / "b.csv"
    empty.write_bytes(b"")
    df = read_requests(empty)
    assert len(df) == 0 and list(df.columns) == list(COLUMNS)


def test_read_requests_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "requests.csv"
    with pytest.raises(ScoringError, match=re.escape(str(missing))):
        read_requests(missing)


def test_read_requests_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text("start,end\n1.0,2.0\n", encoding="utf-8")
    with pytest.raises(ScoringError, match="latency_ms"):
        read_requests(path)


# --- SLIs --------------------------------------------------------------------------------


def test_per_second_known_set() -> None:
    lat0 = [100.0, 200.0, 300.0, 400.0]
    rows = [
        {"start": T0 + 0.1 * i, "latency_ms": v, "ttft_ms": v / 10, "output_tokens": 10}
        for i, v in enumerate(lat0)
    ]
    # second 1: one success, one failure (HTTP 500) -> failure counts at the timeout
    rows.append({"start": T0 + 1.0, "latency_ms": 50.0, "ttft_ms": 5.0, "output_tokens": 7})
    rows.append({"start": T0 + 1.1, "latency_ms": 20.0, "status": 500, "error": "boom"})
    # second 2: nothing; second 3: a non-streaming success (no TTFT)
    rows.append({"start": T0 + 3.0, "latency_ms": 250.0, "output_tokens": 3})
    ps = per_second(frame(rows), T0, TIMEOUT_MS)

    assert list(ps.columns) == list(PER_SECOND_COLUMNS)
    assert ps["second"].tolist() == [0, 1, 2, 3]
    assert ps["requests"].tolist() == [4, 2, 0, 1]
    assert ps["errors"].tolist() == [0, 1, 0, 0]
    assert ps["throughput_rps"].tolist() == [4, 1, 0, 1]
    assert ps["tokens_per_s"].tolist() == [40, 7, 0, 3]
    assert ps["error_rate"].iloc[0] == 0.0 and ps["error_rate"].iloc[1] == 0.5
    assert math.isnan(ps["error_rate"].iloc[2])
    assert ps["p50_ms"].iloc[0] == pytest.approx(np.percentile(lat0, 50))
    assert ps["p99_ms"].iloc[0] == pytest.approx(np.percentile(lat0, 99))
    assert ps["ttft_p95_ms"].iloc[0] == pytest.approx(np.percentile([v / 10 for v in lat0], 95))
    assert ps["p50_ms"].iloc[1] == pytest.approx(np.percentile([50.0, TIMEOUT_MS], 50))
    assert ps["ttft_p95_ms"].iloc[1] == pytest.approx(np.percentile([5.0, TIMEOUT_MS], 95))
    assert all(math.isnan(ps[c].iloc[2]) for c in ("p50_ms", "p99_ms", "ttft_p95_ms"))
    assert ps["p50_ms"].iloc[3] == 250.0 and math.isnan(ps["ttft_p95_ms"].iloc[3])


def test_per_second_extends_to_load_end_and_clips_early_ends() -> None:
    rows = [{"start": T0 - 1.0, "latency_ms": 500.0}, {"start": T0 + 0.5, "latency_ms": 100.0}]
    ps = per_second(frame(rows), T0, TIMEOUT_MS, until=T0 + 5.0)
    assert ps["second"].tolist() == [0, 1, 2, 3, 4]
    assert ps["requests"].tolist() == [2, 0, 0, 0, 0]


def test_per_second_empty() -> None:
    assert len(per_second(frame([]), T0, TIMEOUT_MS)) == 0
    ps = per_second(frame([]), T0, TIMEOUT_MS, until=T0 + 3)
    assert ps["requests"].tolist() == [0, 0, 0]


def test_overall_failed_requests_count_at_timeout() -> None:
    ok = [{"start": T0 + i * 0.01, "latency_ms": 100.0, "ttft_ms": 10.0} for i in range(97)]
    bad = [{"start": T0 + 1 + i * 0.01, "latency_ms": 3.0, "status": 0, "error": "refused"}
           for i in range(3)]  # fmt: skip
    nostream = [{"start": T0 + 2, "latency_ms": 100.0}]  # success without TTFT: not in TTFT
    df = frame(ok + bad + nostream)
    o = overall(df, TIMEOUT_MS, duration_s=10.0)
    lat = [100.0] * 98 + [TIMEOUT_MS] * 3
    ttft = [10.0] * 97 + [TIMEOUT_MS] * 3
    assert o["requests"] == 101 and o["errors"] == 3 and o["successes"] == 98
    assert o["error_rate"] == pytest.approx(3 / 101)
    assert o["p50_latency_ms"] == pytest.approx(np.percentile(lat, 50))
    assert o["p99_latency_ms"] == pytest.approx(np.percentile(lat, 99))
    assert o["p99_latency_ms"] > 100.0
    assert o["ttft_p95_ms"] == pytest.approx(np.percentile(ttft, 95))
    assert o["ttft_p99_ms"] == pytest.approx(np.percentile(ttft, 99))
    assert o["throughput_rps"] == pytest.approx(9.8)
    assert o["tokens_per_s"] == pytest.approx(98 * 16 / 10.0)


def test_overall_error_text_with_status_200_is_failed() -> None:
    df = frame([{"latency_ms": 100.0}, {"latency_ms": 100.0, "error": "stream cut"}])
    assert overall(df, TIMEOUT_MS)["errors"] == 1


def test_write_per_second_roundtrip(tmp_path: Path) -> None:
    ps = per_second(traffic(5.0), T0, TIMEOUT_MS, until=T0 + 7)
    path = tmp_path / "slis.csv"
    write_per_second(ps, path)
    back = pd.read_csv(path)
    assert list(back.columns) == list(PER_SECOND_COLUMNS)
    assert back["requests"].tolist() == ps["requests"].tolist()
    assert math.isnan(back["p99_ms"].iloc[-1])


# --- recovery ----------------------------------------------------------------------------

SLOS = SLOSpec(p99_latency_ms=1000.0, error_rate=0.05, ttft_p95_ms=500.0, hold_s=3)


def test_empty_seconds_during_outage_do_not_hold() -> None:
    df = traffic(20.0, outage=(5.0, 9.0), mode="none")
    df = df[df["end"] - T0 >= 1.0]  # nothing completes in second 0: before the first request
    ps = per_second(df, T0, TIMEOUT_MS)
    holds = holding_seconds(ps, SLOS)
    assert ps["requests"].iloc[0] == 0 and bool(holds.iloc[0])
    assert ps["requests"].iloc[5:9].eq(0).all()
    assert not holds.iloc[5:9].any()
    assert holds.iloc[9:].all() and holds.iloc[1:5].all()


def test_outage_30_to_42_recovers_in_12s() -> None:
    df = traffic(80.0, outage=(30.0, 42.0), by="start")
    ps = per_second(df, T0, TIMEOUT_MS)
    rec = analyze_recovery(ps, T0, T0 + 30.0, T0 + 42.0, SLOS, [], requests=df)
    assert rec["fault"] is True and rec["recovered"] is True and rec["breached"] is True
    assert rec["time_to_recover_s"] == pytest.approx(12.0, abs=1.0)
    assert rec["time_to_detect_s"] == pytest.approx(0.0, abs=1.0)
    assert rec["worst_error_rate"] == 1.0 and rec["worst_p99_ms"] == TIMEOUT_MS
    assert rec["requests_lost"] == 12 * 20
    assert rec["degraded_s"] == pytest.approx(12.0, abs=1.0)


def test_recovery_without_breach_is_zero() -> None:
    df = traffic(30.0)
    ps = per_second(df, T0, TIMEOUT_MS)
    rec = analyze_recovery(ps, T0, T0 + 10.0, T0 + 15.0, SLOS, [])
    assert rec["time_to_recover_s"] == 0.0 and rec["recovered"] is True
    assert rec["time_to_detect_s"] is None and rec["requests_lost"] == 0


def test_recovery_needs_hold_s_seconds_in_a_row() -> None:
    df = traffic(40.0, outage=(10.0, 15.0))
    flap = (df["end"] - T0 >= 17.0) & (df["end"] - T0 < 18.0)  # one bad second after a good one
    df.loc[flap, "status"] = 500
    ps = per_second(df, T0, TIMEOUT_MS)
    rec = analyze_recovery(ps, T0, T0 + 10.0, T0 + 15.0, SLOS, [])
    assert rec["time_to_recover_s"] == pytest.approx(8.0)  # run 18..20 holds, 15..16 too short


def test_capacity_return_uses_last_replica_ready_after_fault() -> None:
    df = traffic(40.0, outage=(10.0, 15.0))
    ps = per_second(df, T0, TIMEOUT_MS)
    caps = events(("replica_ready", 1.0, "r0"), ("replica_ready", 16.5, "r0"),
                  ("replica_ready", 18.0, "r1"), ("replica_exit", 30.0, "r1"))  # fmt: skip
    rec = analyze_recovery(ps, T0, T0 + 10.0, T0 + 15.0, SLOS, caps)
    assert rec["capacity_return_s"] == pytest.approx(8.0)
    assert analyze_recovery(ps, T0, T0 + 10.0, None, SLOS, [])["capacity_return_s"] is None


def test_fault_after_the_data_is_not_recovered() -> None:
    ps = per_second(traffic(10.0), T0, TIMEOUT_MS)
    rec = analyze_recovery(ps, T0, T0 + 50.0, None, SLOS, [])
    assert rec["recovered"] is False and rec["time_to_recover_s"] is None
    assert rec["time_to_detect_s"] is None and "no data" in rec["note"]


def test_analyze_recovery_without_fault() -> None:
    ps = per_second(traffic(5.0), T0, TIMEOUT_MS)
    assert analyze_recovery(ps, T0, None, None, SLOS, []) == {"fault": False}


# --- scorecard ---------------------------------------------------------------------------

ALL = SLOSpec(
    p50_latency_ms=500.0,
    p99_latency_ms=1000.0,
    ttft_p95_ms=500.0,
    error_rate=0.1,
    throughput_rps=5.0,
    recovery_s=20.0,
    hold_s=3,
)
META = {"harness_version": "0.1.0", "experiment": "gpu-node-loss", "run_id": "r1"}


def score(df: pd.DataFrame, timeline: list[dict[str, Any]], slos: SLOSpec = ALL) -> dict:
    card = build_scorecard(df, timeline, slos, timeout_ms=TIMEOUT_MS, meta=META)
    json.dumps(card, allow_nan=False)  # always JSON-serialisable without NaN
    return card


def run_timeline(*extra: tuple[str, float, str], end: float = 60.0) -> list[dict[str, Any]]:
    return events(("load_start", 0.0, ""), *extra, ("load_end", end, ""))


def test_all_pass_run() -> None:
    df = traffic(60.0, outage=(20.0, 20.27), by="start")  # a blip: 6 of 1200 requests fail
    tl = run_timeline(("fault_start", 20.0, "node-a"), ("fault_end", 25.0, "node-a"),
                      ("replica_ready", 27.0, "r0"))  # fmt: skip
    card = score(df, tl)
    assert card["schema"] == 2 and card["meta"] == META
    assert [s["name"] for s in card["slos"]] == [
        "p50_latency_ms", "p99_latency_ms", "ttft_p95_ms", "error_rate", "throughput_rps",
        "recovery_s",
    ]  # fmt: skip
    assert all(s["passed"] for s in card["slos"]), card["slos"]
    assert card["verdict"] == "pass" and card["exit_code"] == 0
    rec = card["recovery"]
    assert rec["fault_start"] == 20.0 and rec["fault_end"] == 25.0
    assert rec["fault_target"] == "node-a" and rec["capacity_return_s"] == 7.0
    assert rec["time_to_recover_s"] == pytest.approx(1.0) and rec["requests_lost"] == 6
    recovery_slo = card["slos"][-1]
    assert recovery_slo["measured"] == rec["time_to_recover_s"]
    assert card["run"]["t0"] == T0 and card["run"]["duration_s"] == 60.0
    assert card["run"]["requests"] == len(df)
    assert card["run"]["throughput_rps"] == pytest.approx((df["status"] == 200).sum() / 60.0)


def test_never_recovered_fails() -> None:
    df = traffic(60.0, outage=(20.0, 1e9), by="start")
    card = score(df, run_timeline(("fault_start", 20.0, "node-a")))
    rec = card["recovery"]
    assert rec["recovered"] is False and rec["time_to_recover_s"] is None
    assert rec["fault_end"] is None
    assert rec["requests_lost"] == int((df["status"] != 200).sum())
    slo = {s["name"]: s for s in card["slos"]}["recovery_s"]
    assert slo["passed"] is False and slo["measured"] is None and "not recover" in slo["note"]
    assert card["verdict"] == "fail" and card["exit_code"] == 1


def test_no_fault_in_timeline() -> None:
    card = score(traffic(30.0), run_timeline(end=30.0))
    assert card["recovery"] == {"fault": False}
    slos = {s["name"]: s for s in card["slos"]}
    assert slos["recovery_s"]["passed"] is False and slos["recovery_s"]["measured"] is None
    assert "no fault" in slos["recovery_s"]["note"]
    assert all(s["passed"] for n, s in slos.items() if n != "recovery_s")
    no_recovery_slo = SLOSpec(p99_latency_ms=1000.0)
    assert score(traffic(30.0), run_timeline(end=30.0), no_recovery_slo)["exit_code"] == 0


def test_aborted_run() -> None:
    tl = run_timeline(("fault_start", 20.0, "node-a"), end=30.0)
    tl.insert(2, {"time": T0 + 25.0, "kind": "abort", "target": "",
                  "details": {"reason": "SIGTERM"}})  # fmt: skip
    card = score(traffic(25.0), tl)
    assert card["verdict"] == "aborted" and card["exit_code"] == 2
    assert card["abort_reason"] == "SIGTERM"


def test_no_requests_at_all() -> None:
    card = score(frame([]), run_timeline(("fault_start", 5.0, "n"), ("fault_end", 9.0, "n")))
    assert len(card["slos"]) == 6
    for slo in card["slos"]:
        assert slo["passed"] is False and slo["measured"] is None and slo["note"]
    assert card["run"]["requests"] == 0 and card["run"]["error_rate"] is None
    assert card["verdict"] == "fail" and card["exit_code"] == 1
    # no timeline either
    bare = score(frame([]), [], SLOSpec())
    assert bare["verdict"] == "fail" and bare["recovery"] == {"fault": False}


def test_t0_and_load_end_fall_back_to_requests() -> None:
    df = traffic(10.0)
    card = score(df, [], SLOSpec(p99_latency_ms=1000.0))
    assert card["run"]["t0"] == T0
    assert card["run"]["duration_s"] == pytest.approx(df["end"].max() - T0)


def test_fault_end_matches_target() -> None:
    tl = run_timeline(("fault_start", 10.0, "node-a"), ("fault_end", 11.0, "node-b"),
                      ("fault_end", 14.0, "node-a"))  # fmt: skip
    card = score(traffic(60.0, outage=(10.0, 14.0)), tl)
    assert card["recovery"]["fault_end"] == 14.0


def test_ttft_slo_without_streaming_fails_with_note() -> None:
    df = traffic(10.0)
    df["ttft_ms"] = math.nan
    card = score(df, [], SLOSpec(ttft_p95_ms=100.0))
    (slo,) = card["slos"]
    assert slo["passed"] is False and slo["measured"] is None and "TTFT" in slo["note"]


def test_scorecard_table() -> None:
    df = traffic(60.0, outage=(20.0, 1e9))
    card = score(df, run_timeline(("fault_start", 20.0, "node-a")))
    table = scorecard_table(card)
    lines = table.splitlines()
    assert len(lines) <= 24
    assert lines[0].split() == ["SLO", "objective", "measured", "result"]
    assert "FAIL" in table and "PASS" in table and "not recovered" in table
    assert lines[-1].startswith("verdict") and "FAIL (exit 1)" in lines[-1]
    assert "\x1b" not in table
    # the measured column lines up
    col = lines[0].index("measured")
    assert all(line[col - 2 : col] == "  " for line in lines[1:7])
    assert "none" in scorecard_table(score(traffic(5.0), []))


def test_seconds_after_the_load_stopped_are_no_breach() -> None:
    # Locust's stop leaves empty seconds between the shape's end and load_end; they must not
    # read as an outage that never recovered
    df = traffic(40.0)
    tl = events(("load_start", 0.0, ""), ("fault_start", 10.0, "node-a"),
                ("fault_end", 20.0, "node-a"), ("load_end", 44.0, ""),
                duration_s=40.0)  # fmt: skip
    card = score(df, tl)
    rec = card["recovery"]
    assert rec["recovered"] is True and rec["time_to_recover_s"] == 0.0
    assert rec["time_to_detect_s"] is None
    assert rec["worst_throughput_ratio"] == pytest.approx(1.0, abs=0.1)


def test_a_service_dead_until_the_end_is_not_recovered_by_trailing_silence() -> None:
    df = traffic(40.0, outage=(10.0, 40.0))
    tl = events(("load_start", 0.0, ""), ("fault_start", 10.0, "node-a"),
                ("load_end", 46.0, ""))  # fmt: skip
    rec = score(df, tl)["recovery"]
    assert rec["recovered"] is False and rec["time_to_recover_s"] is None


def test_fault_windows_pair_each_start_with_its_own_end() -> None:
    tl = run_timeline(
        ("fault_start", 10.0, "node-a"),
        ("fault_start", 12.0, "node-b"),
        ("fault_end", 15.0, "node-a"),
        ("fault_start", 20.0, "node-a"),
        ("fault_end", 30.0, "node-a"),
    )
    assert [(s - T0, None if e is None else e - T0, t) for s, e, t in fault_windows(tl)] == [
        (10.0, 15.0, "node-a"),
        (12.0, None, "node-b"),  # never ended
        (20.0, 30.0, "node-a"),  # not the node-a end the first fault took
    ]
    assert fault_windows(run_timeline()) == []


def test_a_cascade_has_each_faults_own_figures() -> None:
    """Two outages: the headline figures are the first fault's; per_fault has both."""
    df = traffic(90.0, outage=(20.0, 25.0), by="start")
    second = traffic(90.0, outage=(50.0, 60.0), by="start")
    hit = second["status"] != 200
    df.loc[hit, second.columns] = second.loc[hit]
    tl = run_timeline(
        ("fault_start", 20.0, "node-a"),
        ("fault_end", 25.0, "node-a"),
        ("fault_start", 50.0, "node-b"),
        ("fault_end", 60.0, "node-b"),
        end=90.0,
    )
    card = score(df, tl)
    rec = card["recovery"]
    assert rec["faults"] == 2 and rec["fault_target"] == "node-a"
    first, then = rec["per_fault"]
    assert (first["target"], first["start_s"], first["end_s"]) == ("node-a", 20.0, 25.0)
    assert (then["target"], then["start_s"], then["end_s"]) == ("node-b", 50.0, 60.0)
    assert first["requests_lost"] == rec["requests_lost"] == 100  # 5 s at 20 requests/s
    assert then["requests_lost"] == 200  # 10 s
    assert first["time_to_recover_s"] == rec["time_to_recover_s"]
    assert then["recovered"] and then["time_to_recover_s"] == pytest.approx(10.0, abs=1.0)
    text = scorecard_table(card)
    assert "fault 2" in text and "node-b 50.0 s-60.0 s" in text
