"""The cluster-autoscaler model on a fake clock with a fake platform: which nodes it
requests for pending replicas, when each provisioning stage ends, its bounds (max_nodes,
nodes already on their way) and the scale-down of nodes that stayed empty."""

from __future__ import annotations

from typing import Any

from harness.config.pools import ClusterAutoscalerSpec, NodePoolSpec
from harness.platforms.local.cluster import ClusterAutoscaler
from harness.timeline import Timeline


class FakePlatform:
    """Pending replicas and per-node placements the test sets; records what the model did."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.assigned: dict[str, int] = {}
        self.provisioned: list[str] = []
        self.retired: list[str] = []

    def pending_replicas(self) -> list[str]:
        return list(self.pending)

    def node_assigned(self, node: str) -> int:
        return self.assigned.get(node, 0)

    def provision_node(self, node: str) -> None:
        self.provisioned.append(node)
        self.pending = self.pending[1:]  # the scheduler places one replica there

    def retire_node(self, node: str) -> bool:
        if self.assigned.get(node):
            return False
        self.retired.append(node)
        return True


def _pool(**kw: Any) -> NodePoolSpec:
    base: dict[str, Any] = {
        "name": "gpu",
        "capacity": 1,
        "max_nodes": 2,
        "boot_s": 30,
        "driver_s": 60,
        "image_pull_s": 100,
    }
    base.update(kw)
    return NodePoolSpec(**base)


def _model(
    platform: FakePlatform, *pools: NodePoolSpec, scan: float = 10, unneeded: float = 60
) -> ClusterAutoscaler:
    spec = ClusterAutoscalerSpec(scan_interval_s=scan, scale_down_unneeded_s=unneeded)
    return ClusterAutoscaler(platform, list(pools), spec, Timeline(None), clock=lambda: 0.0)


def _actions(model: ClusterAutoscaler) -> list[tuple[str, str | None]]:
    return [(e["action"], e.get("stage") or e.get("node")) for e in model.events]


def test_a_pending_replica_brings_a_node_after_its_three_stages() -> None:
    platform = FakePlatform()
    model = _model(platform, _pool())
    model.step(0.0)  # first scan: nothing pending
    assert model.events == []
    platform.pending = ["scaled-0"]
    model.step(5.0)  # between scans: nothing yet
    assert model.events == []
    model.step(10.0)  # the scan finds it
    assert _actions(model) == [("node_requested", "gpu-0")]
    requested = model.events[0]
    assert requested["scaler"] == "cluster-autoscaler" and requested["pending"] == ["scaled-0"]
    assert requested["expected_ready_s"] == 190
    model.step(39.9)
    assert len(model.events) == 1  # boot takes 30 s
    model.step(40.0)
    assert model.events[-1]["stage"] == "boot"
    model.step(100.0)
    assert model.events[-1]["stage"] == "driver"
    assert platform.provisioned == []
    model.step(200.0)  # 10 + 30 + 60 + 100
    assert [e["action"] for e in model.events[-2:]] == ["node_stage", "node_ready"]
    assert model.events[-1]["provisioning_s"] == 190
    assert platform.provisioned == ["gpu-0"] and model.state("gpu-0") == "ready"


def test_nodes_on_their_way_count_and_max_nodes_bounds() -> None:
    platform = FakePlatform()
    model = _model(platform, _pool(max_nodes=2))
    platform.pending = ["a", "b", "c"]
    model.step(0.0)
    # two nodes (the pool's max) for three replicas, and one report that the pool is full
    assert _actions(model) == [
        ("node_requested", "gpu-0"),
        ("node_requested", "gpu-1"),
        ("max_nodes", None),
    ]
    assert model.events[-1]["unplaced"] == 1
    model.step(10.0)  # still pending, nodes on their way: no new request, no repeated report
    model.step(20.0)
    assert len(model.events) == 3


def test_capacity_per_node_and_the_next_pool_in_order() -> None:
    platform = FakePlatform()
    big = _pool(name="big", capacity=2, max_nodes=1)
    small = _pool(name="small", capacity=1, max_nodes=3, boot_s=1, driver_s=1, image_pull_s=1)
    model = _model(platform, big, small)
    platform.pending = ["a", "b", "c"]
    model.step(0.0)
    assert _actions(model) == [("node_requested", "big-0"), ("node_requested", "small-0")]


def test_min_nodes_start_ready_and_are_never_removed() -> None:
    platform = FakePlatform()
    model = _model(platform, _pool(min_nodes=1, max_nodes=2), unneeded=30)
    assert model.state("gpu-0") == "ready" and model.state("gpu-1") == "absent"
    for t in range(0, 200, 10):
        model.step(float(t))
    assert model.events == [] and platform.retired == []


def test_an_empty_node_is_removed_after_scale_down_unneeded_s() -> None:
    platform = FakePlatform()
    model = _model(platform, _pool(boot_s=0, driver_s=0, image_pull_s=0), unneeded=30)
    platform.pending = ["scaled-0"]
    model.step(0.0)
    assert _actions(model) == [("node_requested", "gpu-0")] + [
        ("node_stage", s) for s in ("boot", "driver", "image_pull")
    ] + [("node_ready", "gpu-0")]
    platform.pending = []
    platform.assigned["gpu-0"] = 1  # the replica runs there
    model.step(10.0)
    platform.assigned["gpu-0"] = 0  # scaled down: the node is empty from the scan at 20 s
    for t in (20.0, 30.0, 40.0):
        model.step(t)
    assert platform.retired == []  # empty for 20 s only
    model.step(50.0)
    assert platform.retired == ["gpu-0"] and model.state("gpu-0") == "absent"
    assert model.events[-1]["action"] == "node_removed" and model.events[-1]["empty_s"] == 30
    platform.pending = ["scaled-1"]  # the pool may grow again
    model.step(60.0)
    assert model.events[-5]["action"] == "node_requested"


def test_a_node_that_gets_a_replica_again_is_kept() -> None:
    platform = FakePlatform()
    model = _model(platform, _pool(boot_s=0, driver_s=0, image_pull_s=0), unneeded=30)
    platform.pending = ["x"]
    model.step(0.0)
    platform.pending = []
    model.step(10.0)  # empty from 10 s
    platform.assigned["gpu-0"] = 1
    model.step(20.0)  # busy again: the count starts over
    platform.assigned["gpu-0"] = 0
    model.step(30.0)
    model.step(50.0)
    assert platform.retired == []
    model.step(60.0)
    assert platform.retired == ["gpu-0"]
