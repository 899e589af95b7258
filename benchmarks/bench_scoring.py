"""``make bench``: how long scoring ten million request records takes next to reading them.

Generates N synthetic request records (vectorized, written with pyarrow) into a temporary
run folder with a timeline (load start and end, a spike, a 12 s fault and its recovery),
then times:

- **read**: :func:`harness.scoring.read_requests` of ``requests.csv`` (the floor: no
  scorer can be faster than reading its input);
- **score**: :func:`harness.scoring.build_scorecard` on the frame already in memory
  (SLIs, windows, recovery, error budget, goodput, score);
- **total**: ``gpuchaos score RUN_DIR`` end to end (read + score + telemetry + journal),
  without writing.

It prints the three times and the ratios score/read and total/read. The goal is
score/read <= 3. Usage: ``python benchmarks/bench_scoring.py [--records N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml

from harness.config import SLOSpec
from harness.records import COLUMNS
from harness.rundir import EXPERIMENT_FILE, REQUESTS_FILE, TIMELINE_FILE
from harness.scoring import build_scorecard, read_requests
from harness.scoring.rundir import score_run_dir

T0 = 1_700_000_000.0
GOAL = 3.0

SLOS = SLOSpec(
    p50_latency_ms=250,
    p99_latency_ms=1000,
    ttft_p95_ms=250,
    tpot_p95_ms=50,
    error_rate=0.01,
    availability=0.99,
    throughput_rps=20,
    goodput_rps=20,
    recovery_s=20,
    windows={"p99_latency_ms": "steady"},
)


def generate(path: Path, records: int, duration_s: float, seed: int = 0) -> None:
    """Write ``records`` synthetic request rows over ``duration_s`` seconds: healthy
    streaming traffic, a 3x spike in the middle third, an outage (requests fail fast)
    from 40% to 40% + 12 s of the run."""
    rng = np.random.default_rng(seed)
    weight = np.ones(int(duration_s))
    weight[int(duration_s / 3) : int(2 * duration_s / 3)] = 3.0
    sec = rng.choice(weight.size, size=records, p=weight / weight.sum())
    start = T0 + np.sort(sec + rng.random(records))
    latency = rng.lognormal(np.log(60.0), 0.5, records)
    ttft = latency * rng.uniform(0.1, 0.3, records)
    tokens = np.full(records, 16, dtype=np.int64)
    status = np.full(records, 200, dtype=np.int64)
    outage = (start - T0 >= 0.4 * duration_s) & (start - T0 < 0.4 * duration_s + 12.0)
    status[outage] = 503
    latency[outage] = 2.0
    tokens[outage] = 0
    ttft_col = pa.array(ttft, mask=outage)
    error = np.where(outage, "connection refused", "")
    replica = np.where(rng.random(records) < 0.5, "node-a-0", "node-b-0")
    in_spike = (start - T0 >= duration_s / 3) & (start - T0 < 2 * duration_s / 3)
    phase = np.where(in_spike, "spike", "baseline")
    table = pa.table(
        {
            "start": start,
            "end": start + latency / 1000.0,
            "latency_ms": latency,
            "ttft_ms": ttft_col,
            "output_tokens": tokens,
            "status": status,
            "error": pa.array(error.astype(object)),
            "replica": pa.array(replica.astype(object)),
            "phase": pa.array(phase.astype(object)),
        }
    )
    assert tuple(table.column_names) == COLUMNS
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))


def make_run_dir(root: Path, records: int, duration_s: float) -> Path:
    """A run folder the offline scorer accepts: experiment, timeline, requests."""
    run = root / "bench-run"
    run.mkdir()
    experiment = {
        "title": "bench",
        "version": "1.0.0",
        "extensions": [
            {
                "name": "gpuchaos",
                "platform": {"kind": "local", "nodes": [{"name": "node-a"}]},
                "load": {
                    "shape": {
                        "duration_s": duration_s,
                        "baseline_users": 4,
                        "spike_start_s": duration_s / 3,
                        "spike_duration_s": duration_s / 3,
                    }
                },
                "slos": SLOS.model_dump(exclude_defaults=True),
            }
        ],
    }
    (run / EXPERIMENT_FILE).write_text(yaml.safe_dump(experiment), encoding="utf-8")
    fault = 0.4 * duration_s
    events = [
        (0.0, "load_start", "locust", {}),
        (0.0, "phase", "load", {"phase": "baseline"}),
        (duration_s / 3, "phase", "load", {"phase": "spike"}),
        (fault, "fault_start", "node-a", {}),
        (fault + 12.0, "fault_end", "node-a", {}),
        (fault + 14.0, "replica_ready", "node-a-0", {}),
        (2 * duration_s / 3, "phase", "load", {"phase": "baseline"}),
        (duration_s, "load_end", "locust", {}),
    ]
    with open(run / TIMELINE_FILE, "w", encoding="utf-8") as fh:
        for t, kind, target, details in events:
            fh.write(
                json.dumps({"time": T0 + t, "kind": kind, "target": target, "details": details})
                + "\n"
            )
    generate(run / REQUESTS_FILE, records, duration_s)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="request records")
    parser.add_argument("--duration-s", type=float, default=3600.0, help="length of the run")
    parser.add_argument("--keep", help="generate into this folder and keep it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="gpuchaos-bench-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        run = make_run_dir(root, args.records, args.duration_s)
        generated = time.perf_counter() - began
        size_mb = (run / REQUESTS_FILE).stat().st_size / 1e6
        print(f"generated {args.records:,} records ({size_mb:.0f} MB) in {generated:.1f} s")

        began = time.perf_counter()
        df = read_requests(run / REQUESTS_FILE)
        read_s = time.perf_counter() - began
        assert len(df) == args.records

        began = time.perf_counter()
        card = build_scorecard(df, _timeline(run), SLOS, timeout_ms=30_000.0, meta={})
        score_s = time.perf_counter() - began
        del df

        began = time.perf_counter()
        score_run_dir(run, write=False)
        total_s = time.perf_counter() - began

    ratio = score_s / read_s
    print(f"read   {read_s:7.2f} s  (read_requests)")
    print(f"score  {score_s:7.2f} s  (build_scorecard on the frame in memory)")
    print(f"total  {total_s:7.2f} s  (gpuchaos score RUN_DIR: read + score)")
    print(f"ratio  score/read {ratio:.2f} (goal <= {GOAL:.0f}), total/read {total_s / read_s:.2f}")
    print(
        f"check  time to recover {card['recovery'].get('time_to_recover_s')} s, "
        f"score {card['score']['value']}"
    )
    return 0 if ratio <= GOAL else 1


def _timeline(run: Path) -> list[dict[str, object]]:
    from harness.timeline import read_timeline

    return read_timeline(run / TIMELINE_FILE)


if __name__ == "__main__":
    sys.exit(main())
