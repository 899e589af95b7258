"""The spare-capacity preflight over a few topologies with known answers, its line, and the
experiment-level checks (``--dry-run`` lines, ``preflight: strict`` refusing before deploy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import LocalPlatformSpec
from harness.scoring.preflight import preflight_node_loss

ROOT = Path(__file__).resolve().parents[2]


def _platform(nodes: list[dict[str, Any]], **extra: Any) -> LocalPlatformSpec:
    return LocalPlatformSpec.model_validate({"nodes": nodes, **extra})


POOL = {
    "name": "gpu",
    "capacity": 1,
    "max_nodes": 2,
    "boot_s": 30,
    "driver_s": 60,
    "image_pull_s": 90,
}


def test_the_issue_example_two_replicas_room_for_one_a_pool_node_in_190_s() -> None:
    spec = _platform(
        [
            {"name": "node-a", "replicas": 2, "max_replicas": 2},
            {"name": "node-b", "replicas": 1, "max_replicas": 2},
        ],
        pools=[POOL],
        cluster_autoscaler={"scan_interval_s": 10},
    )
    check = preflight_node_loss(spec, "node-a", recovery_s=60)
    assert (check.replicas, check.room_elsewhere, check.unplaced) == (2, 1, 1)
    assert (check.pool_nodes, check.pool, check.pool_s) == (1, "gpu", 190)
    assert check.capacity_s == 190 and check.in_time is False
    assert check.line() == (
        "node-a lost: 2 replicas, room for 1 elsewhere, a pool node would take about 190 s; "
        "recovery objective 60 s: cannot recover in time"
    )
    assert preflight_node_loss(spec, "node-a", recovery_s=200).in_time is True


def test_enough_room_elsewhere_fits_at_once() -> None:
    spec = _platform(
        [
            {"name": "node-a", "replicas": 1},
            {"name": "node-b", "replicas": 1, "max_replicas": 3},
        ]
    )
    check = preflight_node_loss(spec, "node-a", recovery_s=5, down_for_s=30)
    assert (check.unplaced, check.capacity_s, check.in_time) == (0, 0.0, True)
    assert check.line() == (
        "node-a lost: 1 replica, room for 2 elsewhere; recovery objective 5 s: fits"
    )


def test_no_room_no_pool_waits_for_the_node_or_never() -> None:
    spec = _platform([{"name": "node-a", "replicas": 2}, {"name": "node-b", "replicas": 1}])
    back = preflight_node_loss(spec, "node-a", recovery_s=20, down_for_s=15)
    assert (back.unplaced, back.pool_s, back.capacity_s, back.in_time) == (2, None, 15, True)
    assert "no pool node can take the rest, the node returns after 15 s" in back.line()
    never = preflight_node_loss(spec, "node-a", recovery_s=20, down_for_s=None)
    assert never.capacity_s is None and never.in_time is False
    assert preflight_node_loss(spec, "node-a", recovery_s=None).in_time is None


def test_pool_bounds_min_nodes_and_capacity() -> None:
    # three lost replicas; one empty pool node present (min_nodes 1) takes one; the other two
    # need two more nodes of capacity 1, but max_nodes 2 leaves one: the first pool cannot
    # take them; the second pool (capacity 2) can, with one node
    spec = _platform(
        [{"name": "node-a", "replicas": 3}, {"name": "node-b", "replicas": 1}],
        pools=[
            {**POOL, "min_nodes": 1, "max_nodes": 2},
            {**POOL, "name": "big", "capacity": 2, "max_nodes": 1, "boot_s": 100},
        ],
        cluster_autoscaler={"scan_interval_s": 5},
    )
    check = preflight_node_loss(spec, "node-a", recovery_s=300, down_for_s=600)
    assert (check.room_elsewhere, check.unplaced) == (1, 2)
    assert (check.pool, check.pool_nodes, check.pool_s) == ("big", 1, 5 + 100 + 60 + 90)
    assert check.capacity_s == 255 and check.in_time is True
    assert "a pool node would take about 255 s, the node returns after 600 s" in check.line()


def test_pools_without_a_cluster_autoscaler_only_count_nodes_present() -> None:
    spec = _platform(
        [{"name": "node-a", "replicas": 2}, {"name": "node-b", "replicas": 1}],
        pools=[{**POOL, "min_nodes": 1}],
    )
    check = preflight_node_loss(spec, "node-a", recovery_s=10, down_for_s=100)
    assert (check.room_elsewhere, check.unplaced, check.pool_s) == (1, 1, None)
    assert check.in_time is False


def _capstone(tmp_path: Path, **changes: Any) -> Path:
    doc = yaml.safe_load((ROOT / "experiments" / "capstone-slow-capacity.yaml").read_text())
    doc["extensions"][0].update(changes)
    path = tmp_path / "capstone.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_dry_run_prints_the_preflight(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    path = ROOT / "experiments" / "capstone-slow-capacity.yaml"
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (
        "dry run: preflight: node-a lost: 1 replica, room for 0 elsewhere, a pool node would "
        "take about 190 s, the node returns after 300 s; recovery objective 120 s: cannot "
        "recover in time"
    ) in out
    assert "dry run: pool gpu-pool: 0-2 node(s) of 1 replica(s), each ready 180 s" in out


def test_strict_refuses_before_deploy_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    path = _capstone(tmp_path, preflight="strict")
    code = main(["run", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "preflight: strict, and node-a lost" in err[0], err
    assert "cannot recover in time (nothing was deployed)" in err[0]
    assert not (tmp_path / "run").exists()
    # a pool fast enough for the objective passes the strict check (dry run: nothing runs)
    fast = _capstone(tmp_path, preflight="strict")
    code = main(["run", str(fast), "--dry-run", "--var", "boot_s=10", "--var", "image_pull_s=5"])
    assert code == 0


def test_a_lost_gpu_is_checked_like_a_lost_node(capsys: pytest.CaptureFixture[str]) -> None:
    """lose_gpu takes the node's replicas away for unhealthy_s (the node stays up): the same
    room-or-wait arithmetic, named as the GPU's loss."""
    from harness.cli import main

    spec = _platform(
        [{"name": "node-a", "replicas": 1}, {"name": "node-b", "replicas": 1, "max_replicas": 1}]
    )
    check = preflight_node_loss(spec, "node-a", recovery_s=15, down_for_s=30, loss="gpu")
    assert check.line() == (
        "node-a's GPU lost: 1 replica, room for 0 elsewhere, no pool node can take the rest, "
        "the node returns after 30 s; recovery objective 15 s: cannot recover in time"
    )
    path = ROOT / "experiments" / "gpu-lost.yaml"
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    # node-b has room for the poisoned replica: it fits at once, whatever unhealthy_s is
    assert (
        "dry run: preflight: node-a's GPU lost: 1 replica, room for 1 elsewhere; "
        "recovery objective 15 s: fits"
    ) in out
