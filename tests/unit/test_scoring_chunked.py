"""Scoring a request log in parts gives the figures of scoring it in memory, bit for bit.

A run folder of 300,000 generated records (seeded) is scored twice by `score_run_dir`: as
one frame, and read in blocks of 1 MB and scored from partitions on disk
(`GPUCHAOS_SCORE_CHUNK_BYTES`, about 30 blocks and 20 partitions). The folder has what
makes the parts path work hard: a spike, two faults, SLOs over named, load-phase and
rolling windows, the open loop's lag, a `t0` that is not a whole second (so `slis.csv` is
cut at other second bounds than the scorecard's), damaged rows of every kind the reader
steps over, a quoted error text with a line break and a comma, a record days away (the
far-off rule's median), and a torn last line. The scorecard (warnings included) and
`slis.csv` must be equal.

The exact order statistics under it (`harness.scoring.select`) are checked against
`numpy.quantile` on ties, negative numbers, and with the collecting bin forced tiny so every
level of the search runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml

from harness.records import COLUMNS, OPTIONAL_COLUMNS
from harness.rundir import RunDir
from harness.scoring import select
from harness.scoring.parts import CHUNK_ENV, merge_warnings
from harness.scoring.rundir import score_run_dir
from harness.scoring.select import OrderStatistics, numpy_quantiles, quantile_ranks

T0 = 1_700_000_000.123_456_7  # not a whole second, not 6 decimals
ROWS = 300_000
SECONDS = 600.0
SLOS = {
    "p50_latency_ms": 250,
    "p99_latency_ms": 1000,
    "ttft_p95_ms": 250,
    "tpot_p95_ms": 50,
    "tpot_p99_ms": 60,
    "error_rate": 0.01,
    "availability": 0.99,
    "throughput_rps": 20,
    "goodput_rps": 20,
    "recovery_s": 20,
    "windows": {
        "p99_latency_ms": "steady",
        "p50_latency_ms": "load:spike",
        "ttft_p95_ms": 30,
        "goodput_rps": 10,
        "tpot_p99_ms": "fault",
    },
}


def _records(rng: np.random.Generator) -> pa.Table:
    """Streaming traffic with a 3x spike in the middle third and two outages."""
    weight = np.ones(int(SECONDS))
    weight[200:400] = 3.0
    sec = rng.choice(weight.size, size=ROWS, p=weight / weight.sum())
    start = T0 + np.sort(sec + rng.random(ROWS))
    latency = rng.lognormal(np.log(60.0), 0.5, ROWS)
    ttft = latency * rng.uniform(0.1, 0.3, ROWS)
    tokens = rng.integers(0, 20, ROWS)
    status = np.full(ROWS, 200)
    outage = ((start - T0 >= 240) & (start - T0 < 252)) | ((start - T0 >= 450) & (start - T0 < 455))
    status[outage] = 503
    latency[outage] = 2.0
    streamed = ~outage & (rng.random(ROWS) < 0.9)  # some non-streaming requests
    error = np.where(outage, "connection refused", "")
    lag = rng.exponential(5.0, ROWS)  # open loop: the generator fell behind for 10 s
    lag[(start - T0 >= 100) & (start - T0 < 110)] += 300.0
    return pa.table(
        {
            "start": start,
            "end": start + latency / 1000.0,
            "latency_ms": latency,
            "ttft_ms": pa.array(ttft, mask=~streamed),
            "output_tokens": tokens,
            "status": status,
            "error": pa.array(error.astype(object)),
            "replica": pa.array(np.where(sec % 2 == 0, "node-a-0", "node-b-0").astype(object)),
            "phase": pa.array(
                np.where((sec >= 200) & (sec < 400), "spike", "baseline").astype(object)
            ),
            "queue_ms": np.zeros(ROWS),
            "lag_ms": lag,
        }
    )


def _damage(lines: list[bytes], rng: np.random.Generator) -> list[bytes]:
    """Bad rows of every kind, spread over the log (the header stays first)."""
    good = lines[len(lines) // 2].split(b",")
    bad = [
        b",".join([good[0], good[1], b"nan", *good[3:]]),  # NaN: a cell that is not a number
        b",".join([*good, b"extra", b"fields", b"here"]),  # more fields than the header
        b",".join([good[0], b"", *good[2:]]),  # no end time
        b",".join([good[0], good[1], b"inf", *good[3:]]),  # infinite
        b",".join([good[0], good[1], b"1e300", *good[3:]]),  # huge
        b",".join([good[0], good[1], b"12.5", b"", b"1", b"500", b'"boom, ""x""\r\nline 2"']),
        b",".join([str(T0 - 30 * 86400).encode(), str(T0 - 30 * 86400 + 1).encode(), *good[2:]]),
    ]
    for row in bad:
        for _copy in range(3):
            at = int(rng.integers(1, len(lines)))
            lines.insert(at, row + b",node-a-0,baseline" if row.count(b",") == 6 else row)
    return lines


def _run_folder(path: Path) -> Path:
    rng = np.random.default_rng(20_240_613)
    path.mkdir()
    paths = RunDir(path)
    experiment = {
        "title": "chunked",
        "version": "1.0.0",
        "extensions": [
            {
                "name": "gpuchaos",
                "platform": {"kind": "local", "nodes": [{"name": "node-a"}]},
                "load": {
                    "shape": {
                        "duration_s": SECONDS,
                        "baseline_users": 4,
                        "spike_start_s": 200.0,
                        "spike_duration_s": 200.0,
                    }
                },
                "slos": SLOS,
            }
        ],
    }
    paths.experiment.write_text(yaml.safe_dump(experiment), encoding="utf-8")
    events = [
        (-1.0, "run_start", "chunked", {}),
        (0.0, "load_start", "locust", {"duration_s": SECONDS}),
        (0.0, "phase", "load", {"phase": "baseline"}),
        (200.0, "phase", "load", {"phase": "spike"}),
        (240.0, "fault_start", "node-a", {"fault": "lose_node"}),
        (252.0, "fault_end", "node-a", {}),
        (255.5, "replica_ready", "node-a-0", {}),
        (400.0, "phase", "load", {"phase": "baseline"}),
        (450.0, "fault_start", "node-b", {"fault": "lose_node"}),
        (455.0, "fault_end", "node-b", {}),
        (SECONDS + 0.3, "load_end", "locust", {}),
        (SECONDS + 1.0, "run_end", "chunked", {}),
    ]
    with open(paths.timeline, "w", encoding="utf-8") as fh:
        for t, kind, target, details in events:
            record = {"time": T0 + t, "kind": kind, "target": target, "details": details}
            fh.write(json.dumps(record) + "\n")
    table = _records(rng)
    assert tuple(table.column_names) == COLUMNS + OPTIONAL_COLUMNS
    pacsv.write_csv(table, paths.requests, write_options=pacsv.WriteOptions(quoting_style="needed"))
    lines = paths.requests.read_bytes().split(b"\n")[:-1]
    lines[0] = ",".join(COLUMNS + OPTIONAL_COLUMNS).encode()  # unquoted, as RecordWriter does
    lines = _damage(lines, rng)
    paths.requests.write_bytes(b"\n".join(lines) + b"\n" + lines[5][:17])  # a torn last line
    return path


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, str, str]:
    run = _run_folder(tmp_path_factory.mktemp("chunked") / "run")
    size = RunDir(run).requests.stat().st_size
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CHUNK_ENV, str(size + 1))  # one block: the frame in memory
        whole = score_run_dir(run)
        whole_slis = RunDir(run).slis.read_text()
        mp.setenv(CHUNK_ENV, str(1 << 20))
        parts = score_run_dir(run)
        parts_slis = RunDir(run).slis.read_text()
    assert size > 20 * (1 << 20)  # so the parts path really ran in many blocks
    return whole, parts, whole_slis, parts_slis


def test_every_figure_of_the_scorecard_is_the_same(both: tuple[dict, dict, str, str]) -> None:
    whole, parts, _, _ = both
    assert whole["run"]["requests"] > 0.99 * ROWS  # the bad rows out, the rest scored
    assert whole["recovery"]["faults"] == 2 and whole["recovery"]["requests_lost"] > 0
    assert any(e.get("worst_window_start_s") is not None for e in whole["slos"])
    assert whole["instrument"]["lag_affected_s"] >= 9  # the lag of the open loop, in parts too
    assert json.dumps(parts, sort_keys=True) == json.dumps(whole, sort_keys=True)


def test_the_damage_is_reported_once_with_the_totals(both: tuple[dict, dict, str, str]) -> None:
    whole, parts, _, _ = both
    assert parts["warnings"] == whole["warnings"]
    text = " | ".join(whole["warnings"])
    for said in (
        "skipped a torn last line",
        "left out 3 row(s) with extra fields",
        "left out 3 row(s) with a cell that is not a number",
        "dropped 3 row(s) without a start or end time",
        "dropped 6 row(s) with an infinite or huge value",
        "dropped 3 row(s) with a time more than 7 days",
    ):
        assert said in text


def test_slis_csv_is_the_same(both: tuple[dict, dict, str, str]) -> None:
    _, _, whole_slis, parts_slis = both
    assert len(whole_slis.splitlines()) > SECONDS
    assert parts_slis == whole_slis


def test_block_warnings_add_up_in_the_readers_order() -> None:
    blocks = [
        "requests.csv: dropped 2 row(s) without a start or end time",
        "requests.csv: left out 1 row(s) with extra fields",
        "requests.csv: dropped 3 row(s) without a start or end time",
        "requests.csv: dropped 1 row(s) with an infinite or huge value",
    ]
    assert merge_warnings(blocks) == [
        "requests.csv: left out 1 row(s) with extra fields",
        "requests.csv: dropped 5 row(s) without a start or end time",
        "requests.csv: dropped 1 row(s) with an infinite or huge value",
    ]


@pytest.mark.parametrize("collect", [4, select.COLLECT])
def test_order_statistics_give_numpys_quantiles(
    monkeypatch: pytest.MonkeyPatch, collect: int
) -> None:
    monkeypatch.setattr(select, "COLLECT", collect)
    rng = np.random.default_rng(7)
    sets = {
        "lognormal": rng.lognormal(4.0, 1.0, 50_001),
        "ties": np.repeat([30_000.0, 2.0, 61.5], [20_000, 9_000, 3]),
        "signed": rng.normal(0.0, 1e-3, 10_000),
        "one": np.array([42.0]),
        "two": np.array([1.0, 1.0000000000000002]),
    }
    qs = [0.5, 0.95, 0.99, 0.999, 1.0]
    parts = [{k: v[i::3] for k, v in sets.items()} for i in range(3)]
    tops = {k: OrderStatistics.top_histogram(v) for k, v in sets.items()}
    ranks = {}
    for k, v in sets.items():
        below, above, _ = quantile_ranks(v.size, qs)
        ranks[k] = {*below.tolist(), *above.tolist()}
    found = OrderStatistics(lambda: iter(parts)).find(ranks, tops)
    for k, v in sets.items():
        expected = [float(x) for x in np.quantile(v, qs)]
        assert numpy_quantiles(v.size, qs, found[k]) == expected, k


def test_no_values_give_nan() -> None:
    assert all(np.isnan(numpy_quantiles(0, [0.5, 0.99], {})))


def test_a_bad_block_size_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness.errors import ConfigError
    from harness.scoring.parts import chunk_bytes

    monkeypatch.setenv(CHUNK_ENV, "12")
    with pytest.raises(ConfigError, match=CHUNK_ENV):
        chunk_bytes()
    monkeypatch.delenv(CHUNK_ENV)
    assert chunk_bytes() == 16 << 20
