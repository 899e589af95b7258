"""The CLI's exit-code contract under fuzzing: seeded random command lines (every command,
odd files and folders, malformed options) through ``harness.cli.main`` in-process. Whatever
comes in, no exception escapes, the exit code is 0, 1 or 2, and every exit 2 ends in exactly
one ``gpuchaos: error:`` line on stderr (a CI gate reads 1 as "an SLO missed" only).

Nothing here deploys: ``run`` only ever gets inputs that fail validation, or ``--dry-run``."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]
NODE_LOSS = ROOT / "experiments" / "gpu-node-loss.yaml"
SEED = 2026
CASES = 120


def _odd_paths(tmp: Path) -> list[str]:
    (tmp / "dir").mkdir()
    (tmp / "empty.yaml").write_bytes(b"")
    (tmp / "binary.yaml").write_bytes(bytes(range(256)))
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    (tmp / "scorecard.json").write_text('{"verdict": 5, "slos": "x"}')
    (tmp / "run").mkdir()
    (tmp / "run" / "timeline.jsonl").write_text('{"kind": "run_start"}\n{garbage\n')
    (tmp / "run" / "requests.csv").write_text("a,b\n1,2\n3")
    os.mkfifo(tmp / "fifo.yaml")
    return [
        str(tmp / "dir"), str(tmp / "empty.yaml"), str(tmp / "binary.yaml"),
        str(tmp / "list.yaml"), str(tmp / "scorecard.json"), str(tmp / "run"),
        str(tmp / "fifo.yaml"), str(tmp / "missing"), "", "-", "\x7f", "é" * 300,
    ]  # fmt: skip


def _argv(rng: random.Random, paths: list[str]) -> list[str]:
    odd_values = ["", "=", "a=b=c", "duration_s=1e999", "nope=1", "duration_s=[", "x" * 500]
    command = rng.choice(
        ["run", "validate", "score", "report", "compare", "list", "frobnicate", "", "--bogus"]
    )
    argv = [command] if command else []
    if command in ("run", "validate"):
        argv.append(rng.choice([*paths, str(NODE_LOSS)]))
        for _ in range(rng.randint(0, 3)):
            option = rng.choice(["--var", "--allow-module", "--out", "--kube-context", "--frob"])
            argv += [option, rng.choice(odd_values + paths)]
        if command == "run" and argv[1] == str(NODE_LOSS) and "--var" not in argv:
            argv += ["--var", rng.choice(odd_values[:6])]  # never a valid run
    elif command in ("score", "report", "list"):
        argv += rng.sample(paths, rng.randint(0, 2))
    elif command == "compare":
        argv += rng.sample(paths, rng.randint(0, 3))
        if rng.random() < 0.5:
            argv += ["--max-regression", rng.choice(["x", "-5", "nan", "a=b", "200%", "=3"])]
    if rng.random() < 0.2:
        argv.insert(0, rng.choice(["-v", "--version", "--help"]))
    return argv


def test_no_command_line_escapes_the_exit_code_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    paths = _odd_paths(tmp_path)
    seen: set[int] = set()
    for _ in range(CASES):
        argv = _argv(rng, paths)
        rc = main(argv)  # an escaping exception fails the test with its traceback
        out, err = capsys.readouterr()
        seen.add(rc)
        assert rc in (0, 1, 2), (argv, rc)
        assert "Traceback" not in out + err, (argv, err)
        if rc == 2:  # log lines may come first (-v, "scoring it offline"); one error line last
            errors = [line for line in err.splitlines() if line.startswith("gpuchaos: error: ")]
            assert len(errors) == 1 and err.strip().endswith(errors[0]), (argv, err)
            assert "unexpected" not in errors[0], (argv, errors[0])  # no bug reached the net
    assert 2 in seen and 0 in seen  # the generator reaches both sides of the contract
