"""What ``gpuchaos validate`` says for each class of bad input: the file's own problems, the
code an experiment would run, targets and the machine, and the CLI's exit-code contract.
(The seeded fuzz in test_validate_fuzz.py checks that every mutation is one line and exit 2;
these check that the line says the right thing.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.errors import ConfigError
from harness.experiment import load_experiment
from tests.support.fuzz import CANARY

ROOT = Path(__file__).resolve().parents[2]
NODE_LOSS = ROOT / "experiments" / "gpu-node-loss.yaml"
HANG = ROOT / "experiments" / "replica-hang.yaml"


def _doc(path: Path = NODE_LOSS) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, doc: dict[str, Any] | str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def _refused(path: Path, *match: str, allow: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as err:
        load_experiment(path, allow_modules=allow)
    text = str(err.value)
    for m in match:
        assert m in text, text
    return text


# --- the file itself -------------------------------------------------------------------


def test_a_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = NODE_LOSS.read_text().replace(
        "  node_down_s: 20 ", "  node_down_s: 20\n  node_down_s: -20 ", 1
    )
    _refused(_write(tmp_path, text), "line 26", "'node_down_s' is written twice (first on line 25)")


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    _refused(_write(tmp_path, "\n".join(lines)), "expands to more than 100000 values")


def test_deep_nesting_is_refused_at_its_line(tmp_path: Path) -> None:
    _refused(_write(tmp_path, "a:\n  b: " + "[" * 5000 + "]" * 5000), "line 2", "nested deeper")


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (NODE_LOSS.read_text().encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
        ("title: caf\xe9\n".encode("latin-1"), "line 1: not UTF-8 text (byte 0xe9)"),
        (b"\x7fELF\x02\x01\x01\x00\x00", "NUL byte at offset 7"),
        (b"", "got nothing (an empty file)"),
        (b"- a\n- b\n", "expected a mapping (a Chaos Toolkit experiment), got a list"),
    ],
)
def test_files_that_are_not_yaml_text(tmp_path: Path, data: bytes, said: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(data)
    _refused(path, said)


def test_a_fifo_a_folder_and_a_missing_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "dir.yaml").mkdir()
    _refused(tmp_path / "fifo.yaml", "not a regular file")  # and does not block reading it
    _refused(tmp_path / "dir.yaml", "is a folder")
    _refused(tmp_path / "nope.yaml", "nope.yaml: no such file")


# --- the code an experiment would run ---------------------------------------------------


def _with_first(doc: dict[str, Any], provider: dict[str, Any]) -> dict[str, Any]:
    doc["method"].insert(0, {"type": "action", "name": "surprise", "provider": provider})
    return doc


def test_a_module_outside_the_allowlist_is_refused_before_it_is_imported(tmp_path: Path) -> None:
    CANARY.unlink(missing_ok=True)
    doc = _with_first(
        _doc(),
        {
            "type": "python",
            "module": "os",
            "func": "system",
            "arguments": {"command": f"touch {CANARY}"},
        },
    )
    path = _write(tmp_path, doc)
    _refused(path, "method[0].provider.module: os is not an allowed module", "--allow-module os")
    assert not CANARY.exists()


def test_allow_module_lets_a_named_module_in(tmp_path: Path) -> None:
    doc = _with_first(
        _doc(), {"type": "python", "module": "tests.support.ports", "func": "free_port"}
    )
    path = _write(tmp_path, doc)
    _refused(path, "tests.support.ports is not an allowed module")
    exp = load_experiment(path, allow_modules=("tests.support",))
    assert "tests.support.ports" in exp.modules


def test_a_process_provider_is_refused(tmp_path: Path) -> None:
    doc = _with_first(_doc(), {"type": "process", "path": "/bin/sh", "arguments": "-c true"})
    _refused(_write(tmp_path, doc), "method[0].provider.path: a process provider runs a command")


def test_a_control_that_does_not_resolve_is_refused(tmp_path: Path) -> None:
    doc = _doc()
    doc["controls"][0]["provider"]["module"] = "harness.chaos.control"
    _refused(_write(tmp_path, doc), "controls[0].provider.module: no module harness.chaos.control")
    doc["controls"][0]["provider"]["module"] = "harness.chaos.probes"
    _refused(_write(tmp_path, doc), "is not a Chaos Toolkit control")


def test_faults_without_the_timeline_control_are_refused(tmp_path: Path) -> None:
    doc = _doc()
    del doc["controls"]
    _refused(_write(tmp_path, doc), "controls: faults need the timeline control")


def test_a_misspelt_function_gets_a_suggestion(tmp_path: Path) -> None:
    doc = _doc()
    doc["method"][1]["provider"]["func"] = "lose_nodes"
    _refused(_write(tmp_path, doc), "method[1].provider.func", "did you mean lose_node?")


def test_validate_says_which_modules_it_will_import(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(NODE_LOSS)]) == 0
    out = capsys.readouterr().out
    assert "imports: harness.chaos.controls, harness.chaos.probes, harness.chaos.actions" in out


# --- targets, sections, the machine -----------------------------------------------------


def test_an_undeclared_node_or_replica_is_refused(tmp_path: Path) -> None:
    doc = _doc()
    doc["configuration"]["target_node"] = "node-z"
    _refused(
        _write(tmp_path, doc),
        "method[1].provider.arguments.node: 'node-z' is not a node of this platform",
    )
    doc = _doc(HANG)
    for act in doc["method"] + doc["rollbacks"]:
        if "replica" in (act["provider"].get("arguments") or {}):
            act["provider"]["arguments"]["replica"] = "node-a-3"
    _refused(_write(tmp_path, doc), "node-a runs at most 1 replica (node-a-0)")


def test_pauses_are_checked_as_they_will_run(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"method\[0\]\.pauses\.after: .*greater than or equal to 0"
    ):
        load_experiment(NODE_LOSS, {"fault_delay_s": -3})
    with pytest.raises(ConfigError, match=r"method\[0\]\.pauses\.after"):
        load_experiment(NODE_LOSS, {"fault_delay_s": 1e12})


def test_a_steady_state_probe_needs_a_tolerance(tmp_path: Path) -> None:
    doc = _doc()
    del doc["steady-state-hypothesis"]["probes"][0]["tolerance"]
    _refused(_write(tmp_path, doc), "steady-state-hypothesis", "needs a tolerance")


def test_cores_and_gpus_this_machine_lacks(tmp_path: Path) -> None:
    doc = _doc()
    doc["extensions"][0]["platform"]["nodes"][0]["cpus"] = [4095]
    _refused(_write(tmp_path, doc), "platform.nodes[0].cpus: core 4095 is not one this machine")
    doc = _doc()
    doc["extensions"][0]["platform"]["nodes"][0]["device"] = "cuda:63"
    _refused(_write(tmp_path, doc), "platform.nodes[0].device: cuda:63: this machine has")


def test_a_wrong_key_in_a_union_member_names_that_key(tmp_path: Path) -> None:
    doc = _doc()
    doc["extensions"][0]["load"]["shape"]["spike_multiplyer"] = 3
    _refused(_write(tmp_path, doc), "extensions[0].load.shape.spike_multiplyer: unknown field")


# --- the exit-code contract of the CLI -----------------------------------------------------


def test_an_unexpected_exception_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import harness.experiment

    def boom(*_a: Any, **_k: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(harness.experiment, "load_experiment", boom)
    assert main(["validate", str(NODE_LOSS)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unexpected ZeroDivisionError: division by zero" in err[0]
    where = Path(err[0].rsplit("traceback in ", 1)[1].rstrip(")"))
    assert "Traceback" in where.read_text() and "boom" in where.read_text()
    where.unlink()


def test_a_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["run", str(NODE_LOSS), "--bogus"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("gpuchaos: error: ") for line in lines)
