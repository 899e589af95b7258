"""The replica autoscaler's rules with a fake platform: the single-rule form still means what
it meant, several rules each on their own metric, a scale-down no lower than another rule
asks for, the p99 latency of the load's own records, and a scale-up beyond every node's
room that creates a Pending replica where a pool could bring room."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import AutoscalerSpec
from harness.errors import ConfigError
from harness.platforms.base import ReplicaInfo
from harness.platforms.local.autoscaler import Autoscaler
from harness.platforms.local.latency import LatencyWindow, p99
from harness.records import COLUMNS
from harness.timeline import Timeline


class FakePlatform:
    def __init__(self, ready: int, room: dict[str, int], pools: bool) -> None:
        self.infos = [
            ReplicaInfo(f"node-a-{i}", "node-a", 100 + i, 9000 + i, "ready", 0, "cpu")
            for i in range(ready)
        ]
        self.room = room
        self.pools = pools
        self.added: list[str] = []
        self.removed: list[str] = []

    def replicas(self) -> list[ReplicaInfo]:
        return list(self.infos)

    def replica_count(self) -> int:
        return len(self.infos) + len(self.added) - len(self.removed)

    def node_room(self) -> dict[str, int]:
        return dict(self.room)

    def node_device(self, node: str) -> str:
        return "cpu"

    def add_replica(self, node: str) -> str | None:
        if self.room.get(node, 0) <= 0:
            return None
        self.room[node] -= 1
        rid = f"{node}-new{len(self.added)}"
        self.added.append(rid)
        return rid

    def remove_replica(self, replica_id: str) -> None:
        self.removed.append(replica_id)

    def add_pending_replica(self) -> str | None:
        if not self.pools:
            return None
        rid = f"scaled-{len(self.added)}"
        self.added.append(rid)
        return rid


def _scaler(platform: FakePlatform, spec: AutoscalerSpec, values: list[float | None]) -> Autoscaler:
    """An autoscaler whose rule ``i`` reads ``values[i]``."""
    scaler = Autoscaler(platform, spec, Timeline(None))

    def measure(index: int = 0) -> tuple[float | None, int]:
        return values[index], len(platform.infos)

    scaler.measure = measure  # type: ignore[method-assign]
    return scaler


def test_the_single_rule_form_is_one_rule() -> None:
    spec = AutoscalerSpec(metric="ttft_s", threshold=0.5, polling_interval_s=2, cooldown_s=7)
    (rule,) = spec.effective_rules()
    assert (rule.metric, rule.threshold, rule.polling_interval_s, rule.cooldown_s) == (
        "ttft_s", 0.5, 2, 7,
    )  # fmt: skip


def test_one_form_or_the_other() -> None:
    with pytest.raises(ValueError, match="threshold: required"):
        AutoscalerSpec()
    with pytest.raises(ValueError, match="not both"):
        AutoscalerSpec.model_validate(
            {"threshold": 1, "rules": [{"metric": "queue_depth", "threshold": 1}]}
        )
    assert not issubclass(ConfigError, ValueError)  # the loader turns these into ConfigError


def test_each_rule_scales_up_on_its_own_and_keeps_its_own_cooldown() -> None:
    platform = FakePlatform(ready=2, room={"node-a": 4}, pools=False)
    spec = AutoscalerSpec.model_validate(
        {
            "min_replicas": 2,
            "max_replicas": 8,
            "max_step": 1,
            "rules": [
                {"metric": "queue_depth", "threshold": 2, "cooldown_s": 1000},
                {"metric": "p99_latency_ms", "threshold": 1000, "cooldown_s": 1000},
            ],
        }
    )
    values: list[float | None] = [1.0, 3000.0]  # queue fine, latency three times too high
    scaler = _scaler(platform, spec, values)
    assert scaler.step(0).outcome == "steady"
    d = scaler.step(1)
    assert (d.outcome, d.rule, d.added) == ("scaled", 1, ["node-a-new0"])
    assert scaler.step(1).outcome == "cooldown"  # the latency rule waits
    values[0] = 8.0  # the queue rule may still act: its own cooldown never started
    assert scaler.step(0).added == ["node-a-new1"]


def test_a_scale_down_goes_no_lower_than_another_rule_asks() -> None:
    platform = FakePlatform(ready=4, room={"node-a": 0}, pools=False)
    spec = AutoscalerSpec.model_validate(
        {
            "min_replicas": 1,
            "max_step": 4,
            "rules": [
                {"metric": "queue_depth", "threshold": 2, "cooldown_s": 0},
                {"metric": "p99_latency_ms", "threshold": 1000, "cooldown_s": 0},
            ],
        }
    )
    values: list[float | None] = [0.0, 750.0]  # queue empty; latency wants 3 of 4
    scaler = _scaler(platform, spec, values)
    scaler.step(1)  # the latency rule proposes 3
    d = scaler.step(0)  # the queue rule alone would go to 1
    assert d.desired == 3 and len(platform.removed) == 1


def test_the_stabilization_window_holds_a_scale_down(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("harness.platforms.local.autoscaler.time.monotonic", lambda: clock[0])
    platform = FakePlatform(ready=4, room={"node-a": 0}, pools=False)
    spec = AutoscalerSpec(
        threshold=2, min_replicas=1, max_step=4, cooldown_s=0, scale_down_stabilization_s=60
    )
    values: list[float | None] = [2.0]  # four replicas are just right
    scaler = _scaler(platform, spec, values)
    assert scaler.step().outcome == "steady"
    clock[0] += 30
    values[0] = 0.5  # one would do, but four were wanted 30 s ago
    assert scaler.step().outcome == "steady" and platform.removed == []
    clock[0] += 31  # the window has passed
    d = scaler.step()
    assert d.outcome == "scaled" and len(platform.removed) == 3


def test_no_room_anywhere_creates_a_pending_replica_only_with_pools() -> None:
    spec = AutoscalerSpec(threshold=1, max_replicas=4, max_step=2)
    without = FakePlatform(ready=1, room={"node-a": 0}, pools=False)
    assert _scaler(without, spec, [3.0]).step().outcome == "no capacity"
    with_pools = FakePlatform(ready=1, room={"node-a": 1}, pools=True)
    d = _scaler(with_pools, spec, [3.0]).step()
    # one on the node with room, then one Pending for the cluster autoscaler
    assert d.added == ["node-a-new0", "scaled-1"] and d.pending == ["scaled-1"]


def _write(path: Path, rows: list[tuple[float, float]]) -> None:
    with open(path, "a") as fh:
        if path.stat().st_size == 0:
            fh.write(",".join(COLUMNS) + "\n")
        for end, latency in rows:
            fh.write(f"{end - latency / 1000},{end},{latency},,1,200,,r,spike\n")


def test_p99_of_the_records_in_the_window(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.touch()
    window = LatencyWindow(lambda: path)
    assert window.p99_ms(100.0, 10) is None  # no records yet
    _write(path, [(91.0, 5000.0)] + [(95.0 + i / 100, 100.0) for i in range(99)])
    assert window.p99_ms(100.0, 10) == 100.0  # 1 slow of 100: the 99th is fast
    _write(path, [(99.0, 4000.0)])
    assert window.p99_ms(100.0, 10) == 4000.0  # now 2 of 101 are slow
    assert window.p99_ms(100.0, 2) == 4000.0
    assert window.p99_ms(120.0, 10) is None  # all older than the window
    assert p99([]) is None and p99([3.0]) == 3.0
