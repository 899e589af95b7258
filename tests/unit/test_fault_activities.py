"""Experiments against the fault registry: the catalog lists every fault (Kubernetes ones
included), validation checks each fault's platform and typed arguments, and the old
argument names still load and pass chaoslib's own check."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.catalog import catalog, catalog_table
from harness.errors import ConfigError
from harness.experiment import load_experiment, parse_vars

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"


def _doc(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _action(doc: dict[str, Any], func: str) -> dict[str, Any]:
    return next(a for a in doc["method"] if (a.get("provider") or {}).get("func") == func)


def test_the_catalog_lists_the_faults_of_every_platform() -> None:
    faults = {e.name: e.faults for e in catalog(EXPERIMENTS)}
    assert faults["k8s-gpu-node-drain"] == ["drain_gpu_node"]
    assert faults["gpu-node-loss"] == ["lose_node"]
    assert faults["capstone"] == ["lose_node", "exhaust_gpu_memory"]
    assert faults["traffic-spike"] == []
    assert "drain_gpu_node" in catalog_table(catalog(EXPERIMENTS))
    # a Kubernetes fault in a pod says how it acts: exec, or the hook via the pod proxy
    assert faults["k8s-gpu-lost"] == ["lose_gpu"]
    assert "lose_gpu [taint + hook via pod proxy]" in catalog_table(catalog(EXPERIMENTS))


def test_old_argument_names_still_load(tmp_path: Path) -> None:
    from chaoslib.experiment import ensure_experiment_is_valid

    doc = _doc("gpu-node-loss")
    args = _action(doc, "lose_node")["provider"]["arguments"]
    args["down_for_s"] = args.pop("duration_s")  # as experiments were written before
    exp = load_experiment(_write(tmp_path, doc))
    ensure_experiment_is_valid(copy.deepcopy(exp.document))  # `chaos validate` too

    doc = _doc("k8s-gpu-node-drain")
    args = _action(doc, "drain_gpu_node")["provider"]["arguments"]
    args["down_for_s"] = args.pop("duration_s")
    ensure_experiment_is_valid(copy.deepcopy(load_experiment(_write(tmp_path, doc)).document))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (-20, "greater than 0"),
        (0, "greater than 0"),  # a timed fault held 0 s is no fault
        ("soon", "valid number"),
        (".inf", "finite number"),
    ],
)
def test_a_bad_fault_argument_names_the_activity(tmp_path: Path, value: Any, problem: str) -> None:
    path = _write(tmp_path, _doc("gpu-node-loss"))
    with pytest.raises(ConfigError) as err:
        load_experiment(path, parse_vars([f"node_down_s={value}"]))
    message = str(err.value)
    assert message.startswith(f"{path}: method[")
    assert ".provider.arguments: lose_node: duration_s:" in message
    assert problem in message


def test_an_unknown_fault_argument_is_refused(tmp_path: Path) -> None:
    doc = _doc("replica-hang")
    _action(doc, "hang_replica")["provider"]["arguments"]["durration_s"] = 3
    with pytest.raises(ConfigError, match="hang_replica: durration_s: unknown argument"):
        load_experiment(_write(tmp_path, doc))


def test_a_fault_of_another_platform_is_refused(tmp_path: Path) -> None:
    doc = _doc("gpu-node-loss")
    action = _action(doc, "lose_node")
    action["provider"].update(module="harness.chaos.k8s", func="drain_gpu_node")
    action["provider"]["arguments"] = {"node": "node-a"}
    with pytest.raises(
        ConfigError,
        match=r"drain_gpu_node is a kubernetes activity \(harness\.chaos\.k8s\); this experiment",
    ):
        load_experiment(_write(tmp_path, doc))
