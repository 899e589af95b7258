"""Game-day plans checked before anything is deployed: the plan model, every experiment
loaded on the plan's deployment, one line naming the plan file and the entry (exit 2), the
dry run's order and length, and gameday.json's exit code. Nothing here deploys."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.gameday.prepare import load_plan
from harness.gameday.record import GamedayRecord

ROOT = Path(__file__).resolve().parents[2]
NODES = [
    {"name": "node-a", "device": "cpu", "replicas": 1, "cpus": [0]},
    {"name": "node-b", "device": "cpu", "replicas": 1, "cpus": [1]},
]
SHORT = {"duration_s": 20, "warmup_s": 2, "spike_start_s": 5, "spike_duration_s": 10}


def write_plan(tmp_path: Path, **fields: object) -> Path:
    doc: dict[str, object] = {
        "title": "unit plan",
        "workload": {"kind": "llm", "model": "auto"},
        "platform": {"kind": "local", "nodes": NODES},
        "experiments": [{"experiment": "traffic-spike", "vars": SHORT}],
    }
    doc.update(fields)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def gameday(
    plan: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    monkeypatch.chdir(ROOT)  # catalog names are looked up in ./experiments
    code = main(["gameday", str(plan), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("entry", "pattern"),
    [
        (
            {"experiment": "gpu-node-lost"},
            r"experiments\[1\] \(gpu-node-lost\): unknown experiment 'gpu-node-lost' .*did you "
            r"mean gpu-node-loss\?",
        ),
        (
            {"experiment": "replica-hang", "vars": {"hang_secs": 3}},
            r"experiments\[1\] \(replica-hang\): vars\.hang_secs: not a configuration key of "
            r"experiments/replica-hang\.yaml \(did you mean hang_s\?\)",
        ),
        (
            {"experiment": "missing/elsewhere.yaml"},
            r"experiments\[1\] \(elsewhere\): no experiment file .*missing/elsewhere\.yaml",
        ),
        (  # checked against the plan's platform: it has no node-c
            {"experiment": "gpu-node-loss", "vars": {"target_node": "node-c"}},
            r"experiments\[1\] \(gpu-node-loss\): experiments/gpu-node-loss\.yaml: "
            r".*'node-c' is not a node of this platform",
        ),
    ],
)
def test_a_bad_entry_is_one_line_naming_the_plan_and_the_entry(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    entry: dict[str, object],
    pattern: str,
) -> None:
    plan = write_plan(tmp_path, experiments=[{"experiment": "traffic-spike", "vars": SHORT}, entry])
    code, _, err = gameday(plan, capsys, monkeypatch)
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"gpuchaos: error: {plan}: "), err
    assert re.search(pattern, err), err
    assert not (ROOT / "results" / "gamedays").exists() or not any(
        p.name.endswith("-plan") for p in (ROOT / "results" / "gamedays").iterdir()
    )  # nothing was deployed, no game-day folder made


def test_a_node_fault_on_an_external_endpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = write_plan(
        tmp_path,
        platform=None,
        endpoint={"url": "http://127.0.0.1:9"},
        experiments=["gpu-node-loss"],
    )
    text = plan.read_text().replace("platform: null\n", "")
    plan.write_text(text)
    code, _, err = gameday(plan, capsys, monkeypatch)
    assert code == 2
    assert err.count("\n") == 1
    assert f"{plan}: experiments[0] (gpu-node-loss): experiments/gpu-node-loss.yaml: " in err
    assert "not available with an external endpoint" in err


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"pause_s": float("inf")}, "pause_s: Input should be a finite number"),
        ({"on_failure": "retry"}, "on_failure: "),
        ({"health_gate": {"hold_s": 0}}, "health_gate.hold_s: "),
        ({"health_gate": {"hold_secs": 3}}, "health_gate.hold_secs: "),
        ({"shuffle": {"seed": -1}}, "shuffle.seed: "),
        ({"experiments": []}, "experiments: "),
        ({"endpoint": {"url": "http://127.0.0.1:9"}}, "not both"),
        ({"platform": None}, "set platform"),
        ({"experiments": [{"experiment": "traffic-spike", "var": {}}]}, "experiments[0].var"),
    ],
)
def test_the_plan_model_is_strict_and_bounded(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fields: dict[str, object],
    where: str,
) -> None:
    code, _, err = gameday(write_plan(tmp_path, **fields), capsys, monkeypatch)
    assert code == 2
    assert err.count("\n") == 1, err
    assert where in err, err


def test_dry_run_prints_the_order_and_the_length(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [
        {"experiment": "traffic-spike", "vars": SHORT},
        {"experiment": "gpu-node-loss", "vars": {**SHORT, "fault_delay_s": 2}},
        {"experiment": "mine/replica-hang.yaml", "own_platform": True},  # beside the plan
        "gpu-compute-contention",
    ]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "replica-hang.yaml").write_text(
        (ROOT / "experiments" / "replica-hang.yaml").read_text()
    )
    plan = write_plan(tmp_path, experiments=entries, pause_s=4)
    code, out, _ = gameday(plan, capsys, monkeypatch, "--dry-run")
    assert code == 0
    lines = [line.removeprefix("dry run: ") for line in out.splitlines()]
    numbered = [line for line in lines if re.match(r"^ ?\d+\. ", line)]
    names = [line.split(".", 1)[1].split()[0] for line in numbered]
    assert names == ["traffic-spike", "gpu-node-loss", "replica-hang", "gpu-compute-contention"]
    assert "2 s warm-up + 20 s load = 22 s, on shared deployment" in numbered[0]
    assert "on its own platform" in numbered[2]
    # resets before every shared experiment but the first; replica-hang deploys its own
    assert sum("reset + health gate" in line for line in lines) == 2
    assert sum(line.strip() == "pause 4 s" for line in lines) == 3
    # 22 + 22 + 100 (replica-hang: 10 + 90) + 100, pauses 12, resets 2 x (3 + 3)
    assert "about 268 s" in lines[-1], lines[-1]


def test_shuffle_is_seeded_and_the_cli_seed_wins(tmp_path: Path) -> None:
    names = ["traffic-spike", "gpu-node-loss", "replica-hang", "gpu-compute-contention"]
    plan = write_plan(tmp_path, experiments=names, shuffle={"seed": 7})
    first = [e.name for e in load_plan(plan).entries]
    assert sorted(first) == sorted(names)
    assert first == [e.name for e in load_plan(plan).entries]  # the same seed, the same order
    orders = {tuple(e.name for e in load_plan(plan, seed=s).entries) for s in range(8)}
    assert len(orders) > 1
    assert load_plan(plan, seed=3).seed == 3


def test_the_plans_platform_replaces_the_experiments(tmp_path: Path) -> None:
    nodes = [{**NODES[0], "replicas": 1}, {**NODES[1], "name": "node-b", "replicas": 1}]
    plan = write_plan(
        tmp_path,
        workload={"kind": "llm", "model": "auto", "max_batch_size": 4},
        platform={"kind": "local", "nodes": nodes, "liveness": {"period_s": 2}},
        experiments=["gpu-node-loss", {"experiment": "traffic-spike", "own_platform": True}],
    )
    shared, own = load_plan(plan).entries
    assert shared.shared and not own.shared
    assert shared.experiment.spec.workload.max_batch_size == 4
    assert shared.experiment.spec.platform.liveness.period_s == 2  # type: ignore[union-attr]
    assert shared.experiment.path == Path("experiments/gpu-node-loss.yaml")
    assert own.experiment.spec.workload.max_batch_size == 16  # its own block


def test_the_example_plan_loads() -> None:
    loaded = load_plan(ROOT / "experiments" / "gamedays" / "cpu-weekly.yaml")
    assert [e.name for e in loaded.entries] == [
        "traffic-spike", "gpu-node-loss", "replica-hang", "gpu-memory-exhaustion",
        "gpu-compute-contention",
    ]  # fmt: skip
    assert all(e.shared for e in loaded.entries)


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        (["passed", "passed"], 0),
        (["passed", "failed"], 1),
        (["failed", "aborted"], 2),
        (["passed", "not run"], 2),
        (["error", "passed"], 2),
        (["incomplete", "failed"], 2),
    ],
)
def test_gameday_json_exit_code(tmp_path: Path, statuses: list[str], code: int) -> None:
    plan = write_plan(tmp_path, experiments=["traffic-spike", "traffic-spike"])
    record = GamedayRecord(tmp_path, load_plan(plan))
    for i, status in enumerate(statuses):
        record.update(i, status=status)
    assert record.finish() == code
    data = json.loads((tmp_path / "gameday.json").read_text())
    assert data["exit_code"] == code and data["ended"] is not None
    assert set(data["experiments"][0]) == {
        "name", "path", "vars", "run_dir", "status", "reason", "exit_code", "reset_s",
        "shared_platform",
    }  # fmt: skip
