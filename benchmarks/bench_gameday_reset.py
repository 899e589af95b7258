"""``make bench-gameday``: what a game day's reset between two experiments costs, against
redeploying the workload for each experiment (what ``gpuchaos run`` does).

On the deployment of ``experiments/gamedays/cpu-weekly.yaml`` (two virtual nodes, one
replica each, the tiny LLM on CPU), measured in one process, each ``--rounds`` times:

- **redeploy**: stop the platform and start a new one until every replica is Ready;
- **reset**: :func:`harness.gameday.reset.reset_platform` on the running deployment after an
  experiment that recovered (its rollbacks ran): faults reverted, every replica Ready,
  queues drained, and the health gate (a trickle at ``trickle_rps`` until the SLOs held for
  ``--hold-s``). Measured on warm replicas (one reset, not counted, after each redeploy):
  a game day's reset always follows an experiment, while a fresh deployment's first
  requests are slow;
- **reset after a node loss**: the same after node-a was lost and left down (the rollback
  did not run): the reset brings the node up, so a replica starts cold inside it.

Goal: the reset under a quarter of a redeploy (the median of each). Prints a table and one
JSON line. Everything started is stopped, whatever happens.

Usage: ``python benchmarks/bench_gameday_reset.py [--rounds N] [--hold-s S]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.gameday.plan import HealthGateSpec  # noqa: E402
from harness.gameday.prepare import load_plan  # noqa: E402
from harness.gameday.reset import reset_platform  # noqa: E402
from harness.runner import bring_up, tear_down  # noqa: E402
from harness.timeline import Timeline  # noqa: E402

PLAN = ROOT / "experiments" / "gamedays" / "cpu-weekly.yaml"
GOAL = 0.25


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each (default 3)")
    ap.add_argument("--hold-s", type=float, default=3.0, help="the gate's hold (default 3)")
    args = ap.parse_args()
    loaded = load_plan(PLAN)
    spec = loaded.entries[0].experiment.spec  # the first experiment's SLOs judge the gate
    gate = HealthGateSpec(**{**loaded.plan.health_gate.model_dump(), "hold_s": args.hold_s})
    folder = Path(tempfile.mkdtemp(prefix="gpuchaos-bench-gameday-"))
    timeline = Timeline(folder / "timeline.jsonl")
    redeploy: list[float] = []
    reset: list[float] = []
    gate_part: list[float] = []  # of each reset, the health gate's share
    reset_node: list[float] = []
    platform: Any = None
    try:
        t0 = time.monotonic()
        platform = bring_up(spec, timeline, folder)
        print(f"deployed in {time.monotonic() - t0:.1f} s", flush=True)
        baseline = len(platform.replicas())
        for i in range(args.rounds):
            t0 = time.monotonic()
            tear_down(platform)
            platform = None
            platform = bring_up(spec, timeline, folder)
            redeploy.append(time.monotonic() - t0)
            # a new deployment's first requests are slow (the model warms up): a game day's
            # reset always follows an experiment, so the replicas are warm; warm them here
            reset_platform(platform, baseline, spec, gate)
            done = reset_platform(platform, baseline, spec, gate)
            reset.append(done.seconds)
            gate_part.append(done.gate.seconds if done.gate is not None else 0.0)
            platform.node_down("node-a")
            reset_node.append(reset_platform(platform, baseline, spec, gate).seconds)
            print(
                f"round {i + 1}: redeploy {redeploy[-1]:.2f} s, reset {reset[-1]:.2f} s "
                f"(gate {gate_part[-1]:.2f} s), "
                f"reset after a node loss {reset_node[-1]:.2f} s",
                flush=True,
            )
    finally:
        if platform is not None:
            tear_down(platform)
        timeline.close()
    series = {"redeploy_s": redeploy, "reset_s": reset, "reset_node_loss_s": reset_node}
    med = {k: statistics.median(v) for k, v in series.items()}
    ratio = med["reset_s"] / med["redeploy_s"]
    print(f"{'':28} {'median':>8} {'min':>8} {'max':>8}")
    for name, values in (("redeploy (stop + start)", redeploy), ("reset + gate", reset),
                         ("  of which the gate", gate_part),
                         ("reset after a node loss", reset_node)):  # fmt: skip
        print(f"{name:28} {statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}")
    verdict = "met" if ratio < GOAL else "missed"
    print(f"reset / redeploy = {ratio:.2f} (goal < {GOAL}: {verdict}); gate hold {args.hold_s:g} s")
    out = {**{k: round(v, 3) for k, v in med.items()}, "ratio": round(ratio, 3)}
    print(json.dumps({**out, "hold_s": args.hold_s, "rounds": args.rounds}))
    return 0 if ratio < GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
