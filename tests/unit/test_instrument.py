"""The scorecard's ``instrument`` section from synthetic telemetry and request records:
which seconds are affected (CPU above the threshold for half a second or more, p95 lag
above its threshold), the peaks, the warning, and old or empty run folders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.records import COLUMNS
from harness.scoring.instrument import (
    CPU_SATURATED_PERCENT,
    LAG_P95_MS,
    instrument_figures,
    read_lag,
)

T0 = 1_700_000_000.0


def _telemetry(rows: list[tuple[float, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": [T0 + r[0] for r in rows],
            "source": [r[1] for r in rows],
            "metric": [r[2] for r in rows],
            "value": [r[3] for r in rows],
        }
    )


def _cpu(values: list[float], source: str = "locust", every: float = 1.0, at: float = 0.2):
    """One sample per ``every`` seconds, the first at ``at`` + ``every`` (after priming)."""
    return [(at + every * (i + 1), source, "cpu_percent", v) for i, v in enumerate(values)]


def _lag(per_second: dict[int, list[float]]) -> pd.DataFrame:
    starts, lags = [], []
    for s, values in per_second.items():
        for i, v in enumerate(values):
            starts.append(T0 + s + i / (len(values) + 1))
            lags.append(v)
    return pd.DataFrame({"start": starts, "lag_ms": lags})


def test_thresholds_sit_where_the_readme_says() -> None:
    assert CPU_SATURATED_PERCENT == 90.0
    assert LAG_P95_MS == 100.0


def test_a_quiet_run_is_not_flagged() -> None:
    tel = _telemetry([*_cpu([20.0] * 9), (1.0, "system", "cpu_pct", 99.0)])
    card = instrument_figures(tel, _lag({s: [2.0, 3.0, 5.0] for s in range(10)}), T0, T0 + 10)
    assert card["sampled"] and card["lag_recorded"]
    assert not card["saturated"]
    assert card["affected_s"] == 0 and card["windows"] == []
    assert card["warning"] is None
    assert card["peak_cpu_percent"] == 20.0
    assert card["peak_lag_ms"] == 5.0
    assert "note" not in card


def test_cpu_above_the_threshold_marks_the_seconds_it_covers() -> None:
    # samples at 1.2, 2.2, ... each covering the second before it: 0.8 of one second
    # and 0.2 of the next; samples 3 and 4 (covering 2.2-4.2) are saturated
    values = [30.0, 40.0, 95.0, 99.0, 30.0, 20.0]
    card = instrument_figures(_telemetry(_cpu(values)), None, T0, T0 + 7)
    assert card["saturated"]
    assert card["cpu_affected_s"] == 2 and card["lag_affected_s"] == 0
    assert card["windows"] == [{"start_s": 2, "end_s": 4}]
    assert card["peak_cpu_percent"] == 99.0
    assert card["peak_cpu_source"] == "locust"
    assert not card["lag_recorded"] and card["peak_lag_ms"] is None
    assert card["warning"] == (
        "the load generator was saturated for 2 s (peak CPU 99% of a core): latency in "
        "those seconds may be the client's, not the server's; add load.workers, use "
        "shorter prompts, or a bigger client machine"
    )


def test_at_the_threshold_is_not_saturated_and_any_worker_counts() -> None:
    tel = _telemetry(
        _cpu([90.0] * 5, "locust")
        + _cpu([10.0] * 5, "locust-worker-0")
        + _cpu([10.0, 10.0, 10.0, 97.0, 10.0], "locust-worker-1")
    )
    card = instrument_figures(tel, None, T0, T0 + 6)
    assert card["windows"] == [{"start_s": 3, "end_s": 4}]
    assert card["peak_cpu_source"] == "locust-worker-1"


def test_half_second_samples_need_half_of_a_second() -> None:
    # every 0.5 s: one saturated sample covers exactly half a second -> that second
    values = [10.0] * 4 + [95.0] + [10.0] * 4
    card = instrument_figures(_telemetry(_cpu(values, every=0.5, at=0.0)), None, T0, T0 + 5)
    assert card["windows"] == [{"start_s": 2, "end_s": 3}]


def test_p95_lag_above_the_threshold_marks_its_second() -> None:
    lag = _lag(
        {
            0: [1.0] * 20,
            1: [1.0] * 19 + [500.0],  # one late arrival of 20: p95 stays low
            2: [150.0] * 20,
            3: [120.0] * 20,
            4: [100.0] * 20,  # at the threshold: not affected
            6: [850.0] * 3,
        }
    )
    card = instrument_figures(None, lag, T0, T0 + 8)
    assert card["lag_affected_s"] == 3
    assert card["windows"] == [{"start_s": 2, "end_s": 4}, {"start_s": 6, "end_s": 7}]
    assert card["peak_lag_ms"] == 850.0
    assert card["affected_s"] == 3
    assert "saturated for 3 s (peak lag 850 ms)" in card["warning"]
    assert not card["sampled"] and "Kubernetes Jobs" in card["note"]


def test_cpu_and_lag_seconds_are_one_set() -> None:
    tel = _telemetry(_cpu([10.0, 95.0, 95.0, 10.0]))
    lag = _lag({2: [300.0] * 5, 3: [300.0] * 5})
    card = instrument_figures(tel, lag, T0, T0 + 5)
    assert card["cpu_affected_s"] == 2 and card["lag_affected_s"] == 2
    assert card["affected_s"] == 3
    assert card["windows"] == [{"start_s": 1, "end_s": 4}]
    assert "(peak CPU 95% of a core, peak lag 300 ms)" in card["warning"]


def test_outside_the_load_does_not_count() -> None:
    # Locust importing before t0 runs at 100%; arrivals after the load end are not the load's
    tel = _telemetry(
        [(-2.0, "locust", "cpu_percent", 100.0), (-1.0, "locust", "cpu_percent", 100.0)]
    )
    tel = pd.concat([tel, _telemetry(_cpu([10.0] * 4, at=-0.2))])
    lag = _lag({5: [900.0] * 4})
    card = instrument_figures(tel, lag, T0, T0 + 4)
    assert not card["saturated"]
    assert card["peak_cpu_percent"] == 10.0
    assert card["peak_lag_ms"] is None and not card["lag_recorded"]


def test_no_telemetry_and_no_lag() -> None:
    for tel in (None, _telemetry([])):
        card = instrument_figures(tel, None, T0, T0 + 3)
        assert card["sampled"] is False and card["lag_recorded"] is False
        assert card["saturated"] is False and card["affected_s"] == 0
        assert card["peak_cpu_percent"] is None and card["peak_lag_ms"] is None
        assert card["warning"] is None


def _write(path: Path, header: list[str], rows: list[list[str]], torn: str = "") -> Path:
    text = ",".join(header) + "\r\n" + "".join(",".join(r) + "\r\n" for r in rows) + torn
    path.write_text(text, encoding="utf-8")
    return path


def _row(start: float, *extra: str) -> list[str]:
    return [f"{start:.6f}", f"{start + 0.1:.6f}", "100.0", "", "1", "200", "", "r0", "p", *extra]


def test_read_lag_tolerates_old_and_closed_loop_folders(tmp_path: Path) -> None:
    assert read_lag(tmp_path / "missing.csv") is None
    old = _write(tmp_path / "old.csv", list(COLUMNS), [_row(T0)])
    assert read_lag(old) is None
    queue_only = _write(tmp_path / "q.csv", [*COLUMNS, "queue_ms"], [_row(T0, "3.0")])
    assert read_lag(queue_only) is None
    closed = _write(
        tmp_path / "closed.csv", [*COLUMNS, "queue_ms", "lag_ms"], [_row(T0, "", "")] * 3
    )
    frame = read_lag(closed)
    assert frame is not None and frame.empty


def test_read_lag_reads_the_column_and_skips_a_torn_line(tmp_path: Path) -> None:
    header = [*COLUMNS, "queue_ms", "lag_ms"]
    rows = [_row(T0 + i, "1.0", f"{10.0 * i:.3f}") for i in range(4)]
    rows[1][6] = '"error, with a comma"'
    torn = f'{T0 + 9:.6f},{T0 + 9.1:.6f},10,,0,0,"cut, in the middle of a quoted field'
    path = _write(tmp_path / "r.csv", header, rows, torn=torn)
    frame = read_lag(path)
    assert frame is not None
    assert frame["lag_ms"].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert frame["start"].tolist() == pytest.approx([T0 + i for i in range(4)])
