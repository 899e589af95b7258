"""Every malformed experiment the seeded generator makes (tests/support/fuzz.py: file
shapes, duplicate keys, numbers, --var values, fault arguments, undeclared targets, modules,
controls, Chaos Toolkit sections, unions, the platform) is refused by ``gpuchaos validate``
with exit 2 and one line naming the file, before anything is imported or deployed."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from harness.cli import main
from tests.support.fuzz import CANARY, Case, cases

CASES = cases()
PREFIX = "gpuchaos: error: "


def test_the_generator_covers_every_class_with_enough_cases() -> None:
    per_class = collections.Counter(c.klass for c in CASES)
    assert len(CASES) >= 150
    assert len(per_class) >= 10
    assert min(per_class.values()) >= 4, per_class
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_refuses_with_one_line(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    CANARY.unlink(missing_ok=True)
    path = case.write(tmp_path)
    rc = main(["validate", str(path), *(f"--var={v}" for v in case.var)])
    out, err = capsys.readouterr()
    assert rc == 2, f"exit {rc}: {out.strip()[:200]}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(PREFIX)
    assert "Traceback" not in err and "unexpected" not in line
    # names the file (or the --var it came from), then a field or what was expected
    named = str(path) in line or ("--var" in line and case.var)
    assert named, line
    assert len(line.replace(str(path), "experiment.yaml")) - len(PREFIX) <= 200, line
    assert not CANARY.exists(), "an experiment ran code it names"
