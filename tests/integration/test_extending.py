"""What docs/extending.md promises: a new fault is one module, a new platform registers
itself, and both run through chaoslib like the built-in ones (tests/support/toy/)."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.chaos.adapter import lookup
from harness.chaos.context import RunContext, activate
from harness.errors import ChaosError
from harness.faults import registry
from harness.faults.contract import Fault
from harness.faults.lifecycle import revert_everything
from harness.platforms import registry as platforms
from harness.runner import CHAOS_SETTINGS
from harness.timeline import Timeline
from tests.support.toy import chaos as toy_chaos
from tests.support.toy.fault import ReniceArgs, ReniceReplica
from tests.support.toy.platform import ToyPlatform, toy_spec

TOY = "tests.support.toy.chaos"


def _activity(name: str, func: str, **arguments: Any) -> dict[str, Any]:
    provider = {"type": "python", "module": TOY, "func": func, "arguments": arguments}
    return {"type": "action", "name": name, "provider": provider}


EXPERIMENT: dict[str, Any] = {
    "title": "a toy fault on a toy platform",
    "description": "renice one replica, leave another reniced until the rollback",
    "controls": [
        {"name": "timeline", "provider": {"type": "python", "module": "harness.chaos.controls"}}
    ],
    "method": [
        _activity("renice-briefly", "renice_replica", replica="toy-0", duration_s=0.3),
        _activity("renice-and-hold", "renice_replica", replica="toy-1", duration_s=0, nice=10),
    ],
    "rollbacks": [_activity("unrenice", "unrenice_replica", replica="toy-1")],
}


@pytest.fixture
def toy(tmp_path: Path) -> Iterator[tuple[ToyPlatform, Timeline]]:
    timeline = Timeline(tmp_path / "timeline.jsonl")
    platform = platforms.make(toy_spec(2), timeline, tmp_path, None)  # type: ignore[arg-type]
    platform.start()
    try:
        yield platform, timeline
    finally:
        revert_everything()
        platform.stop()


def _nice(platform: ToyPlatform, replica: str) -> int:
    return os.getpriority(os.PRIO_PROCESS, platform.replica_pid(replica))


def test_a_toy_fault_on_a_toy_platform_runs_through_chaoslib(
    toy: tuple[ToyPlatform, Timeline], tmp_path: Path
) -> None:
    from chaoslib.experiment import ensure_experiment_is_valid, run_experiment

    platform, timeline = toy
    assert isinstance(platform, ToyPlatform)  # the registry made it from its kind
    before = {r: _nice(platform, r) for r in ("toy-0", "toy-1")}
    ensure_experiment_is_valid(copy.deepcopy(EXPERIMENT))  # what `chaos validate` checks
    assert [lookup(a).fault.name for a in EXPERIMENT["method"]] == ["renice_replica"] * 2  # type: ignore[union-attr]

    ctx = RunContext(platform, timeline, tmp_path, None, time.time())  # type: ignore[arg-type]
    with activate(ctx):
        journal = run_experiment(copy.deepcopy(EXPERIMENT), settings=CHAOS_SETTINGS)

    assert journal["status"] == "completed", journal
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    brief, held = runs["renice-briefly"]["output"], runs["renice-and-hold"]["output"]
    assert brief["nice"] == 19 and brief["held"] is False and brief["injection_latency_s"] > 0
    assert held["nice"] == 10 and held["held"] is True
    assert journal["rollbacks"][0]["output"] == {"replica": "toy-1", "reverted": 1}
    assert {r: _nice(platform, r) for r in before} == before  # both reverted

    events = [(e["kind"], e["target"]) for e in timeline.events if e["kind"].startswith("fault")]
    assert events == [
        ("fault_start", "toy-0"), ("fault_effect", "toy-0"), ("fault_end", "toy-0"),
        ("fault_start", "toy-1"), ("fault_effect", "toy-1"), ("fault_end", "toy-1"),
    ]  # fmt: skip
    ends = [e["details"]["ended_by"] for e in timeline.events if e["kind"] == "fault_end"]
    assert ends == ["action_returned", "revert_action"]


def test_the_toy_fault_is_refused_on_another_platform(
    toy: tuple[ToyPlatform, Timeline], tmp_path: Path
) -> None:
    platform, timeline = toy
    before = _nice(platform, "toy-0")
    platform.kind = "local"  # type: ignore[misc]  # as if the run were on the local platform
    with activate(RunContext(platform, timeline, tmp_path, None, 0.0)):  # type: ignore[arg-type]
        with pytest.raises(ChaosError, match="renice_replica needs the toy platform"):
            toy_chaos.renice_replica("toy-0")  # type: ignore[attr-defined]
        with pytest.raises(ChaosError, match=r"renice_replica: nice: .*less than or equal to 19"):
            platform.kind = "toy"  # type: ignore[misc]
            toy_chaos.renice_replica("toy-0", nice=40)  # type: ignore[attr-defined]
    assert _nice(platform, "toy-0") == before  # refused before anything was done


def test_the_registry_refuses_a_second_fault_of_one_name() -> None:
    class Again(Fault[ReniceArgs]):
        name = "renice_replica"
        platform = "toy"
        args = ReniceArgs

    with pytest.raises(registry.DuplicateFault, match="renice_replica"):
        registry.register(Again)
    assert type(registry.get("toy", "renice_replica")) is ReniceReplica


def test_every_builtin_fault_has_its_contract_filled_in() -> None:
    for fault in registry.faults():
        fields = fault.args.model_fields
        assert fault.target_arg in fields, fault.name
        assert next(iter(fields)) == fault.target_arg, fault.name  # the target comes first
        assert all(f.description for f in fields.values()), fault.name
        assert fault.args.model_config.get("extra") == "forbid", fault.name
        assert fault.summary and fault.proves, fault.name
        if fault.hold != "none":
            assert "duration_s" in fields, fault.name
    names = {(f.platform, f.name) for f in registry.faults()}
    assert {("local", "lose_node"), ("kubernetes", "drain_gpu_node")} <= names
