"""RecentRequests: the live checks' view of requests.csv, read as it grows."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pandas as pd
import pytest

from harness.records import LineTail, RecordWriter
from harness.scoring.recent import RecentRequests
from harness.scoring.slis import read_requests

T0 = 1_800_000_000.0


def _record(i: int, end: float, rng: random.Random) -> dict[str, object]:
    latency = rng.uniform(5, 500)
    failed = rng.random() < 0.1
    return {
        "start": end - latency / 1000,
        "end": end,
        "latency_ms": latency,
        "ttft_ms": None if failed else latency / 4,
        "output_tokens": 0 if failed else 16,
        "status": 503 if failed else 200,
        "error": "HTTP 503: busy, retry later" if failed else "",
        "replica": f"r{i % 3}",
        "phase": "baseline" if end < T0 + 50 else "spike",
    }


def _expected(
    path: Path, now: float, window_s: float, df: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The window from reading the whole file (``df``: that read, when it was done already)."""
    df = read_requests(path) if df is None else df
    return df[df["end"] >= now - window_s].reset_index(drop=True)


def test_windows_match_reading_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    recent = RecentRequests(path, keep_s=10.0)
    assert recent.window(T0, 5.0).empty  # no file yet: an empty frame with the columns
    writer = RecordWriter(path)
    rng = random.Random(4)
    end = T0
    for second in range(100):
        for i in range(20):
            end = T0 + second + i / 20 + rng.uniform(-0.01, 0.01)  # slightly out of order
            writer.write(_record(i, end, rng))
        now = T0 + second + 1
        whole = read_requests(path)  # once per second: the file does not change in between
        for window_s in (1.0, 5.0, 10.0):
            got = recent.window(now, window_s).reset_index(drop=True)
            pd.testing.assert_frame_equal(got, _expected(path, now, window_s, whole))
        assert recent.kept <= 10 * 20 + 5  # only the last keep_s seconds are held
    writer.close()


def test_a_torn_last_line_waits_and_a_wider_window_rereads(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    writer = RecordWriter(path)
    rng = random.Random(1)
    for i in range(30):
        writer.write(_record(i, T0 + i, rng))
    row = "1800000029.5,1800000030.0,500.0,,16,200,,r0,spike,\r\n"
    writer.write_line(row[:20])  # a row half written
    recent = RecentRequests(path, keep_s=5.0)
    now = T0 + 30
    assert len(recent.window(now, 5.0)) == 5
    writer.write_line(row[20:])
    assert len(recent.window(now, 5.0)) == 6
    # a window wider than what was kept reads the file again
    wide = recent.window(now, 20.0).reset_index(drop=True)
    pd.testing.assert_frame_equal(wide, _expected(path, now, 20.0))
    writer.close()


def test_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    """The merge of distributed workers' records replaces requests.csv by a sorted copy."""
    path = tmp_path / "requests.csv"
    writer = RecordWriter(path)
    rng = random.Random(2)
    for i in range(40):
        writer.write(_record(i, T0 + i, rng))
    writer.close()
    recent = RecentRequests(path, keep_s=60.0)
    assert len(recent.window(T0 + 40, 60.0)) == 40

    other = tmp_path / "merged.csv"
    merged = RecordWriter(other)
    for i in range(25):
        merged.write(_record(i, T0 + 15 + i, rng))
    merged.close()
    os.replace(other, path)
    got = recent.window(T0 + 40, 60.0).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _expected(path, T0 + 40, 60.0))
    assert len(got) == 25


@pytest.mark.parametrize("window_s", [0.5, 3.0])
def test_rows_without_an_end_are_skipped_like_read_requests(
    tmp_path: Path, window_s: float
) -> None:
    path = tmp_path / "requests.csv"
    writer = RecordWriter(path)
    writer.write(_record(0, T0, random.Random(3)))
    writer.write_line("1800000000.1,,12.0,,0,0,timeout,,baseline,\r\n")
    writer.close()
    got = RecentRequests(path).window(T0 + 0.2, window_s).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _expected(path, T0 + 0.2, window_s))
    assert len(got) == 1


def test_line_tail_gives_whole_new_lines_and_starts_again_on_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    tail = LineTail(path)
    assert tail.read() == ([], False) and tail.header is None  # no file yet
    path.write_bytes(b"a,b\r\n1,2\r\n3,")
    assert tail.read() == ([b"1,2"], False) and tail.header == b"a,b"
    with open(path, "ab") as fh:
        fh.write(b"4\r\n5,6\r\n")
    assert tail.read() == ([b"3,4", b"5,6"], False)
    assert tail.read() == ([], False)
    other = tmp_path / "merged.csv"
    other.write_bytes(b"a,b\n9,9\n")
    os.replace(other, path)
    assert tail.read() == ([b"9,9"], True)  # replaced: from its start, and said so
    path.write_bytes(b"a,b\n")  # truncated in place
    assert tail.read() == ([], True)
