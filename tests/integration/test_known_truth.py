"""The instrument checked against a known truth: TTFT, TPOT and failure accounting.

A third-party-style OpenAI-compatible server (tests/support/truth_server.py) streams with a
known time to first token and inter-token gap, measures what it did per request, and can
fail every request after the first N. The harness drives it through its real load path
(:func:`harness.load.factory.make_load_runner`, Locust in its own process) and the records
are scored with the scorer's own functions (:func:`harness.scoring.read_requests`,
:func:`harness.scoring.overall`, the figures the scorecard reports). Asserted:

- TTFT p50 as scored is within 2 ms of the truth. The server measures each request from its
  arrival to its first token written; on a busy machine its own wake-ups come late, so the
  truth is what it delivered, per request (matched by its request number), and the rest of
  each TTFT is the client-side overhead (printed with ``-s``: figures in docs/scoring.md). The
  claim is about the harness's own overhead, so the client and the server run with a
  priority above the rest of the machine (nice 10 lower, where the test may raise it; set
  ``KNOWN_TRUTH_NICE_BOOST=0`` to measure them starved like any other process): on two
  cores shared with two busy loops and other test runs, the scheduler's delays alone reach
  several ms, which is the machine's, not the instrument's.
- TPOT p50 as scored matches the known gap within 2 ms / (tokens - 1): TPOT is
  ``(latency - TTFT) / (tokens - 1)``, both ends carry the client's overhead, which cancels
  in the difference, and what is left of the 2 ms accuracy is spread over ``tokens - 1``
  gaps. The server keeps each later token's deadline from the first token, so its gaps do
  not drift, and a late last token is taken out per request as for TTFT.
- Every request after the N-th fails (HTTP 500, or a connection cut mid-answer) and is a
  record: records equal the requests the server saw, one per server request number (the
  ``x-replica-id`` header), failed ones with their status and error set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.config import LoadSpec, StepShape
from harness.load.factory import make_load_runner
from harness.rundir import REQUESTS_FILE
from harness.scoring import failed_mask, overall, read_requests
from harness.scoring.slis import tpot_ms
from harness.timeline import Timeline
from tests.support.truth_server import Failure, TruthServer

#: The truth: arrival to first token, and between tokens (seconds); tokens per request.
TTFT_S = 0.050
GAP_S = 0.010
TOKENS = 8
#: The accuracy the harness promises for TTFT (issue 21), ms.
TTFT_ACCURACY_MS = 2.0
#: Requests answered normally before the server fails every later one.
FAIL_AFTER = 5


@pytest.fixture
def truth() -> Iterator[TruthServer]:
    with TruthServer(ttft_s=TTFT_S, gap_s=GAP_S) as server:
        yield server


def _load(url: str, run_dir: Path, *, users: int, duration_s: float, user: str) -> pd.DataFrame:
    """One run of the harness's load path against ``url``; its records as the scorer reads them."""
    shape = StepShape(kind="step", duration_s=duration_s, start=users, increment=0, step_s=60)
    spec = LoadSpec(user=user, shape=shape, max_tokens=TOKENS, request_timeout_s=10)
    runner = make_load_runner(spec, url, run_dir, Timeline(None))
    try:
        runner.start()
        assert runner.wait(timeout=duration_s + 60), "the load did not end with its shape"
    finally:
        runner.stop()
    assert runner.returncode == 0
    return read_requests(run_dir / REQUESTS_FILE)


def _numbers(df: pd.DataFrame) -> list[int]:
    """The server's request number of each record (its ``x-replica-id`` header)."""
    return sorted(int(r) for r in df["replica"])


@contextmanager
def _ahead_of_the_machine() -> Iterator[int]:
    """This thread (and the threads and processes it starts: the server, Locust) at a nice
    ``KNOWN_TRUTH_NICE_BOOST`` (default 10) lower than it was, where it is allowed to raise
    its priority; yields the nice in effect, restored at the end (lowering one's priority is
    always allowed)."""
    boost = int(os.environ.get("KNOWN_TRUTH_NICE_BOOST", "10"))
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, max(-20, before - boost))
    try:
        yield os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


@pytest.mark.parametrize("users", [1, 2])
def test_ttft_and_tpot_match_the_truth(tmp_path: Path, users: int) -> None:
    with _ahead_of_the_machine() as nice, TruthServer(ttft_s=TTFT_S, gap_s=GAP_S) as truth:
        df = _load(truth.url, tmp_path, users=users, duration_s=6, user="openai-stream")
        served = truth.served
    assert len(df) == len(served) > 20
    assert _numbers(df) == list(range(1, len(served) + 1))
    assert not failed_mask(df).any(), df[failed_mask(df)]
    assert (df["output_tokens"] == TOKENS).all()

    # what the server delivered to each record's request: never a token before its time
    number = df["replica"].astype(int).to_numpy() - 1
    delivered = np.array([s.ttft_ms for s in served], dtype="float64")[number]
    delivered_tpot = np.array([s.tpot_ms for s in served], dtype="float64")[number]
    assert (delivered >= TTFT_S * 1e3).all()
    # the client's share of each TTFT: it cannot see a token before the server wrote it
    overhead = df["ttft_ms"].to_numpy() - delivered
    assert (overhead > 0).all(), "the client saw a first token before the server wrote it"
    late_ms = float(np.median(delivered)) - TTFT_S * 1e3

    scored = overall(df)
    # the records with the server's own lateness taken out, per request: what the harness
    # would have scored had every token left the server exactly on time
    on_time_ttft = overall(df.assign(ttft_ms=TTFT_S * 1e3 + overhead))["ttft_p50_ms"]
    on_time_tpot = np.median(tpot_ms(df).to_numpy() - delivered_tpot + GAP_S * 1e3)
    p50, p95 = np.percentile(overhead, [50, 95])
    print(
        f"\nknown truth, {users} user(s), nice {nice}, {len(df)} requests: TTFT set "
        f"{TTFT_S * 1e3:.1f} ms, "
        f"server late by {late_ms:.3f} ms (p50), scored p50 {scored['ttft_p50_ms']:.3f} ms, "
        f"server lateness taken out {on_time_ttft:.3f} ms; client overhead p50 {p50:.3f} ms, "
        f"p95 {p95:.3f} ms, max {overhead.max():.3f} ms; TPOT set {GAP_S * 1e3:.1f} ms, "
        f"scored p50 {scored['tpot_p50_ms']:.3f} ms, server lateness taken out "
        f"{on_time_tpot:.3f} ms"
    )
    assert abs(on_time_ttft - TTFT_S * 1e3) <= TTFT_ACCURACY_MS
    assert abs(on_time_tpot - GAP_S * 1e3) <= TTFT_ACCURACY_MS / (TOKENS - 1)


@pytest.mark.parametrize(
    ("user", "fail"),
    [
        ("openai-stream", "status"),
        ("openai-stream", "cut"),
        ("openai", "status"),
        ("openai", "cut"),
    ],
)
def test_every_failed_request_is_a_record(
    truth: TruthServer, tmp_path: Path, user: str, fail: Failure
) -> None:
    truth.fail_after, truth.fail = FAIL_AFTER, fail
    df = _load(truth.url, tmp_path, users=2, duration_s=3, user=user)
    seen = truth.seen
    assert seen > FAIL_AFTER + 5
    # records equal the requests the server saw: one per server request, none dropped
    assert len(df) == seen
    assert _numbers(df) == list(range(1, seen + 1))

    number = df["replica"].astype(int)
    ok, bad = df[number <= FAIL_AFTER], df[number > FAIL_AFTER]
    assert not failed_mask(ok).any(), ok
    assert (ok["output_tokens"] == TOKENS).all()
    assert failed_mask(bad).all(), bad
    assert (bad["error"] != "").all(), bad
    if fail == "status":
        assert (bad["status"] == 500).all(), bad
        assert bad["error"].str.startswith("HTTP 500").all(), bad
    elif user == "openai-stream":  # the first token came, then the connection broke
        assert (bad["status"] == 200).all(), bad
        assert (bad["error"] == "stream ended early").all(), bad
        assert (bad["output_tokens"] == 1).all(), bad
    else:  # the headers came, half the body, then the connection broke
        assert (bad["status"] == 200).all(), bad
        assert bad["error"].str.startswith("bad response").all(), bad
        assert (bad["output_tokens"] == 0).all(), bad

    figures = overall(df)
    assert figures["requests"] == seen
    assert figures["errors"] == seen - FAIL_AFTER
    assert figures["successes"] == FAIL_AFTER
