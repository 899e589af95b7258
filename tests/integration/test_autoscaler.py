"""The local autoscaler for real: a queue builds, it scales up within its node capacity (a
`scale` event, then the new replica's `replica_ready`), says when capacity blocks it, and
scales back down when the queue is gone."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from harness.config import AutoscalerSpec, LocalPlatformSpec, NodeSpec, WorkloadSpec
from harness.platforms.local import LocalPlatform
from harness.timeline import Timeline
from tests.support.procs import wait_for


def scale_events(timeline: Timeline) -> list[dict[str, Any]]:
    return [e for e in timeline.events if e["kind"] == "scale" and e["target"] == "autoscaler"]


def test_scales_on_queue_depth_within_capacity(tmp_path: Path) -> None:
    timeline = Timeline(tmp_path / "timeline.jsonl")
    spec = LocalPlatformSpec(
        nodes=[NodeSpec(name="node-a", device="cpu", replicas=1, max_replicas=2)],
        probe_interval_s=0.1,
        autoscaler=AutoscalerSpec(
            threshold=1, polling_interval_s=0.5, cooldown_s=2, min_replicas=1, max_replicas=3
        ),
    )
    workload = WorkloadSpec(model="tiny", max_batch_size=1, ready_timeout_s=60)
    platform = LocalPlatform(spec, workload, timeline, tmp_path / "logs")
    stop = threading.Event()

    def user() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                try:
                    client.post(
                        f"{platform.endpoint}/v1/completions",
                        json={"prompt": "queue up", "max_tokens": 64},
                    )
                except httpx.HTTPError:
                    time.sleep(0.1)

    platform.start()
    users = [threading.Thread(target=user, daemon=True) for _ in range(6)]
    try:
        t0 = time.time()
        for u in users:
            u.start()
        wait_for(
            lambda: any(e["details"]["outcome"] == "scaled" for e in scale_events(timeline)),
            30, "a scale-up",
        )  # fmt: skip
        up = next(e for e in scale_events(timeline) if e["details"]["outcome"] == "scaled")
        assert up["details"]["added"] == ["node-a-1"] and up["details"]["to"] == 2
        assert up["details"]["value"] > 1  # the queue was above the threshold
        wait_for(
            lambda: any(
                e["kind"] == "replica_ready" and e["target"] == "node-a-1" for e in timeline.events
            ),
            60, "the new replica to be Ready",
        )  # fmt: skip
        ready = next(
            e for e in timeline.events if e["kind"] == "replica_ready" and e["target"] == "node-a-1"
        )
        print(
            f"scale-up {up['time'] - t0:.1f} s after the queue began, new replica Ready "
            f"{ready['time'] - up['time']:.1f} s later"
        )
        # max_replicas 3 but the node holds 2: the autoscaler says capacity blocks it
        wait_for(
            lambda: any(e["details"]["outcome"] == "no capacity" for e in scale_events(timeline)),
            30, "a blocked scale-up",
        )  # fmt: skip
        assert platform.replica_count() == 2
    finally:
        stop.set()
        for u in users:
            u.join(timeout=70)
    try:
        wait_for(
            lambda: any(e["details"]["removed"] for e in scale_events(timeline)),
            30, "a scale-down once the queue is gone",
        )  # fmt: skip
        down = next(e for e in scale_events(timeline) if e["details"]["removed"])
        assert down["details"]["to"] == 1 and down["details"]["removed"] == ["node-a-1"]
        assert platform.replica_count() == 1
    finally:
        platform.stop()
