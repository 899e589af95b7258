"""``make bench``: scoring long request logs next to reading them, in time and in memory.

Two cases, each a run folder generated (seeded) in a temporary folder with a timeline (load
start and end, a spike in the middle third, a 12 s fault and its recovery):

- **10M**: ten million records, one hour at ~2,800 requests/s (1.0 GB of CSV), generated
  at once as before, so its scorecard is the one earlier versions measured.
- **50M**: fifty million records, a 14-hour soak at ~1,000 requests/s (5 GB of CSV),
  generated an hour at a time (the generator never holds more than a slice).

Each measurement runs in a process of its own, and its peak memory is that process's
(``VmHWM``):

- **read**: every block of ``requests.csv`` parsed by the scorer's reader
  (:func:`harness.scoring.slis.parse_requests`) and dropped: the floor, no scorer can be
  faster than reading its input; and for 10M also :func:`harness.scoring.read_requests` of
  the whole file into one frame, as earlier versions measured it;
- **score** (10M only): :func:`harness.scoring.build_scorecard` on that frame in memory;
- **total**: ``gpuchaos score RUN_DIR`` end to end, without writing (logs above one block
  are scored in parts, :mod:`harness.scoring.chunked`).

Goals: 10M, score / read <= 3 (as before); 50M, total <= 3 x read and a peak under 2 GB.
Exit 1 when one is missed. Usage: ``python benchmarks/bench_scoring.py [--case 10m|50m|all]
[--records N --duration-s S] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml

from harness.config import SLOSpec
from harness.records import COLUMNS
from harness.rundir import EXPERIMENT_FILE, REQUESTS_FILE, TIMELINE_FILE

T0 = 1_700_000_000.0
GOAL = 3.0
#: The 50M case's memory goal, bytes.
MEMORY_GOAL = 2 << 30
#: ``--case``: records, seconds, how the log is generated.
CASES = {"10m": (10_000_000, 3600.0, "at once"), "50m": (50_000_000, 14 * 3600.0, "by slices")}

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


def generate_slices(path: Path, records: int, duration_s: float, seed: int = 0) -> None:
    """The traffic of :func:`generate` (same shape, same distributions), written an hour of
    the run at a time, so a soak of any length is generated in bounded memory."""
    rng = np.random.default_rng(seed)
    weight = np.ones(int(duration_s))
    weight[int(duration_s / 3) : int(2 * duration_s / 3)] = 3.0
    per_second = rng.multinomial(records, weight / weight.sum())
    options = pacsv.WriteOptions(quoting_style="needed")
    writer: pacsv.CSVWriter | None = None
    for k, first in enumerate(range(0, per_second.size, 3600)):
        counts = per_second[first : first + 3600]
        n = int(counts.sum())
        part = np.random.default_rng([seed, k])
        sec = np.repeat(np.arange(first, first + counts.size), counts)
        start = T0 + np.sort(sec + part.random(n))
        latency = part.lognormal(np.log(60.0), 0.5, n)
        ttft = latency * part.uniform(0.1, 0.3, n)
        tokens = np.full(n, 16, dtype=np.int64)
        status = np.full(n, 200, dtype=np.int64)
        since = start - T0
        outage = (since >= 0.4 * duration_s) & (since < 0.4 * duration_s + 12.0)
        status[outage] = 503
        latency[outage] = 2.0
        tokens[outage] = 0
        in_spike = (since >= duration_s / 3) & (since < 2 * duration_s / 3)
        table = pa.table(
            {
                "start": start,
                "end": start + latency / 1000.0,
                "latency_ms": latency,
                "ttft_ms": pa.array(ttft, mask=outage),
                "output_tokens": tokens,
                "status": status,
                "error": pa.array(np.where(outage, "connection refused", "").astype(object)),
                "replica": pa.array(
                    np.where(part.random(n) < 0.5, "node-a-0", "node-b-0").astype(object)
                ),
                "phase": pa.array(np.where(in_spike, "spike", "baseline").astype(object)),
            }
        )
        if writer is None:
            assert tuple(table.column_names) == COLUMNS
            writer = pacsv.CSVWriter(str(path), table.schema, write_options=options)
        writer.write_table(table)
    if writer is not None:
        writer.close()


def make_run_dir(
    root: Path,
    records: int,
    duration_s: float,
    generator: Callable[[Path, int, float], None] = generate,
) -> Path:
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
    generator(run / REQUESTS_FILE, records, duration_s)
    return run


# -- measurements, each in a process of its own ----------------------------------------------


def _measure(what: str, run: Path) -> dict[str, object]:
    """One measurement in this process (see module): seconds and what it checks."""
    from harness.scoring import build_scorecard, read_requests
    from harness.scoring.parts import chunk_bytes, row_blocks
    from harness.scoring.rundir import score_run_dir
    from harness.scoring.slis import parse_requests
    from harness.timeline import read_timeline

    path = run / REQUESTS_FILE
    began = time.perf_counter()
    if what == "read-blocks":
        rows = 0
        with open(path, "rb") as fh:
            header = fh.readline()
            for block in row_blocks(fh, chunk_bytes()):
                rows += len(parse_requests(io.BytesIO(header + block), path))
        return {"seconds": time.perf_counter() - began, "rows": rows}
    if what == "read-frame":
        rows = len(read_requests(path))
        return {"seconds": time.perf_counter() - began, "rows": rows}
    if what == "score-frame":
        df = read_requests(path)
        began = time.perf_counter()
        timeline = read_timeline(run / TIMELINE_FILE)
        card = build_scorecard(df, timeline, SLOS, timeout_ms=30_000.0, meta={})
        return {"seconds": time.perf_counter() - began, "score": card["score"]["value"]}
    card = score_run_dir(run, write=False)
    return {
        "seconds": time.perf_counter() - began,
        "requests": card["run"]["requests"],
        "time_to_recover_s": card["recovery"].get("time_to_recover_s"),
        "score": card["score"]["value"],
        "p99_latency_ms": card["run"]["p99_latency_ms"],
    }


def _peak_bytes() -> int:
    """This process's peak resident memory (``VmHWM``): ``ru_maxrss`` of a child would
    start from the parent's peak (Linux carries it over ``fork`` and ``exec``), and the
    parent generated the 10M log in memory."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(what: str, run: Path) -> dict[str, object]:
    """:func:`_measure` in a child process, with that process's peak memory (bytes)."""
    out = subprocess.run(
        [sys.executable, __file__, "--measure", what, str(run)],
        stdout=subprocess.PIPE,
        check=True,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def _gb(n: object) -> str:
    return f"{float(n) / 2**30:.2f} GiB"  # type: ignore[arg-type]


def run_case(name: str, records: int, duration_s: float, slices: bool, keep: str | None) -> bool:
    """Generate, measure and print one case; whether it met its goals."""
    with tempfile.TemporaryDirectory(prefix="gpuchaos-bench-") as tmp:
        root = Path(keep) / name if keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        run = make_run_dir(root, records, duration_s, generate_slices if slices else generate)
        size_mb = (run / REQUESTS_FILE).stat().st_size / 1e6
        print(
            f"[{name}] generated {records:,} records over {duration_s / 3600:g} h "
            f"({size_mb:,.0f} MB) in {time.perf_counter() - began:.0f} s; load average "
            f"{os.getloadavg()[0]:.1f}",
            flush=True,
        )
        read = measure("read-blocks", run)
        print(
            f"[{name}] read   {read['seconds']:8.1f} s  peak {_gb(read['peak_bytes'])}"
            "  (every block parsed by the scorer's reader)",
            flush=True,
        )
        ok = True
        if not slices:
            frame = measure("read-frame", run)
            score = measure("score-frame", run)
            ratio = float(score["seconds"]) / float(frame["seconds"])  # type: ignore[arg-type]
            print(
                f"[{name}] read   {frame['seconds']:8.1f} s  peak {_gb(frame['peak_bytes'])}"
                "  (read_requests: the whole file as one frame)"
            )
            print(
                f"[{name}] score  {score['seconds']:8.1f} s  (build_scorecard on that frame)"
                f"  score/read {ratio:.2f} (goal <= {GOAL:.0f})",
                flush=True,
            )
            ok &= ratio <= GOAL
        total = measure("total", run)
        ratio = float(total["seconds"]) / float(read["seconds"])  # type: ignore[arg-type]
        print(
            f"[{name}] total  {total['seconds']:8.1f} s  peak {_gb(total['peak_bytes'])}"
            f"  (gpuchaos score RUN_DIR)  total/read {ratio:.2f}",
            flush=True,
        )
        print(
            f"[{name}] check  {total['requests']:,} requests, time to recover "
            f"{total['time_to_recover_s']} s, p99 {total['p99_latency_ms']} ms, "
            f"score {total['score']}; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        if slices:
            met = ratio <= GOAL and int(total["peak_bytes"]) < MEMORY_GOAL  # type: ignore[call-overload]
            print(
                f"[{name}] goal   total <= {GOAL:.0f} x read and peak < {_gb(MEMORY_GOAL)}: "
                f"{'met' if met else 'MISSED'}"
            )
            ok &= met
        return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--records", type=int, help="one case of this many records instead")
    parser.add_argument("--duration-s", type=float, default=3600.0, help="with --records")
    parser.add_argument("--keep", help="generate into this folder and keep it")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.measure:
        result = _measure(args.measure[0], Path(args.measure[1]))
        print(json.dumps(result | {"peak_bytes": _peak_bytes()}))
        return 0
    if args.records:
        cases = {"custom": (args.records, args.duration_s, "by slices")}
    else:
        cases = CASES if args.case == "all" else {args.case: CASES[args.case]}
    ok = True
    for name, (records, duration_s, how) in cases.items():
        ok &= run_case(name, records, duration_s, how == "by slices", args.keep)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
