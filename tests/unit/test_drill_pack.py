"""Drill packs: every problem one line and exit 2 before anything runs; the seeded draw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.drill.document import build_document, write_experiment
from harness.drill.pack import DIAGNOSIS_IDS, load_pack
from harness.drill.pick import pick_scenario

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACK = ROOT / "experiments" / "drills" / "cpu-basics.yaml"


def pack_doc() -> dict[str, Any]:
    return dict(yaml.safe_load(DEFAULT_PACK.read_text(encoding="utf-8")))


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "pack.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def scenario(**changes: Any) -> dict[str, Any]:
    base = {"fault": "hang_replica", "targets": ["node-a-0"], "window_s": [30, 60],
            "duration_s": 30}  # fmt: skip
    base.update(changes)
    return base


BAD_PACKS: list[tuple[str, Any, str]] = [
    ("an unknown key", lambda d: d.update(rounds=3), "rounds: unknown field"),
    ("no scenario", lambda d: d.update(scenarios=[]), "scenarios"),
    ("an unknown fault", lambda d: d.update(scenarios=[scenario(fault="hang_replicas")]),
     "did you mean hang_replica"),
    ("a target that is no replica", lambda d: d.update(scenarios=[scenario(targets=["node-c-0"])]),
     "scenarios[0].targets[0]: not a replica of base.platform"),
    ("a node fault on a replica", lambda d: d.update(
        scenarios=[scenario(fault="lose_node", targets=["node-a-0"])]), "not a node"),
    ("a window before the warmup ends", lambda d: d.update(scenarios=[scenario(window_s=[5, 60])]),
     "starts before the warmup ends"),
    ("a window past the load", lambda d: d.update(scenarios=[scenario(window_s=[30, 140])]),
     "ends after the load"),
    ("a window the wrong way round", lambda d: d.update(scenarios=[scenario(window_s=[60, 30])]),
     "earliest <= latest"),
    ("a window of three", lambda d: d.update(scenarios=[scenario(window_s=[30, 40, 50])]),
     "window_s"),
    ("an infinite duration", lambda d: d.update(scenarios=[scenario(duration_s=float("inf"))]),
     "duration_s"),
    ("true for a duration", lambda d: d.update(scenarios=[scenario(duration_s=True)]),
     "expected a number, not true or false"),
    ("a duration for an instant fault", lambda d: d.update(
        scenarios=[scenario(fault="crash_replica")]), "crash_replica is instant"),
    ("an argument the fault lacks", lambda d: d.update(scenarios=[scenario(args={"bogus": 1})]),
     "scenarios[0].args: hang_replica: bogus: unknown argument"),
    ("a bad base", lambda d: d["base"]["load"].update(users=3), "base.load"),
    ("a platform that is not local", lambda d: d["base"].update(
        platform={"kind": "kubernetes", "namespace": "x"}), "base.platform"),
    ("a herring on no replica", lambda d: d.update(red_herrings=[
        {"kind": "restart", "target": "node-z-0", "window_s": [10, 20]}]),
     "red_herrings[0].target: not a replica"),
    ("too many herrings per drill", lambda d: d.update(herrings_per_drill=1000),
     "herrings_per_drill"),
]  # fmt: skip


@pytest.mark.parametrize(("why", "change", "expected"), BAD_PACKS, ids=[b[0] for b in BAD_PACKS])
def test_a_bad_pack_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], why: str, change: Any, expected: str
) -> None:
    doc = pack_doc()
    change(doc)
    path = write(tmp_path, doc)
    out_dir = tmp_path / "never"
    assert main(["drill", str(path), "--seed", "1", "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"gpuchaos: error: {path}"), err
    assert expected in err, err
    assert not out_dir.exists()  # refused before the folder was made


def test_a_missing_pack_and_bad_options_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", str(tmp_path / "none.yaml")]) == 2
    assert main(["drill", str(DEFAULT_PACK), "--seed", "-1"]) == 2
    assert main(["drill", str(DEFAULT_PACK), "--serve", "10.1.2.3:8080"]) == 2
    assert main(["drill", "act", str(tmp_path), "wave"]) == 2
    assert main(["drill", "act", str(tmp_path), "diagnose", "replica-hung"]) == 2
    assert main(["drill", "act", str(tmp_path), "ack"]) == 2  # no drill runs there
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 6 and all(line.startswith("gpuchaos: error: ") for line in lines)
    assert "not a loopback address" in lines[2]
    assert "no running drill" in lines[5]


def test_the_same_seed_draws_the_same_scenario() -> None:
    loaded = load_pack(DEFAULT_PACK)
    for seed in (0, 7, 123456, 2**32 - 1):
        assert pick_scenario(loaded, seed) == pick_scenario(load_pack(DEFAULT_PACK), seed)


def test_different_seeds_cover_every_scenario_target_and_window() -> None:
    loaded = load_pack(DEFAULT_PACK)
    drawn = [pick_scenario(loaded, seed) for seed in range(60)]
    assert {s.fault for s in drawn} == {s.fault for s in loaded.pack.scenarios}
    assert {s.target for s in drawn} == {"node-a", "node-b", "node-a-0", "node-b-0"}
    assert len({s.at_s for s in drawn}) > 30
    for s in drawn:
        spec = next(x for x in loaded.pack.scenarios if x.fault == s.fault)
        assert spec.window_s[0] <= s.at_s <= spec.window_s[1]
        assert s.target in spec.targets
        assert s.diagnosis == DIAGNOSIS_IDS[s.fault]
        for h in s.herrings:  # away from the injection, never the scenario's own replica
            assert abs(h.at_s - s.at_s) >= loaded.pack.herring_gap_s
            assert not (h.kind == "restart" and h.target == s.target)
    assert any(s.herrings for s in drawn)


def test_every_scenario_of_the_default_pack_is_a_valid_experiment(tmp_path: Path) -> None:
    loaded = load_pack(DEFAULT_PACK)
    seen = set()
    for seed in range(40):
        s = pick_scenario(loaded, seed)
        if (s.fault, s.target) in seen:
            continue
        seen.add((s.fault, s.target))
        exp = write_experiment(loaded, s, tmp_path)  # every check of gpuchaos run
        action = exp.document["method"][1]["provider"]
        assert action["func"] == s.fault
        assert action["arguments"][s.target_arg] == s.target
        wait = exp.document["method"][0]["pauses"]["after"]
        assert wait == pytest.approx(s.at_s - loaded.spec.warmup_s)
    assert len(seen) >= 8


def test_the_experiment_names_no_fault_where_the_trainee_looks() -> None:
    """Its title and activity names reach the timeline the trainee sees."""
    loaded = load_pack(DEFAULT_PACK)
    for seed in range(20):
        s = pick_scenario(loaded, seed)
        doc = build_document(loaded, s)
        names = [doc["title"]] + [a["name"] for a in doc["method"] + doc.get("rollbacks", [])]
        assert not any(s.fault in n or "fault" in n.lower() for n in names), names
