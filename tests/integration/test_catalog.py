"""Every experiment in the catalog is a valid Chaos Toolkit experiment and a valid gpuchaos one.

Both CLIs run for real, each in one child interpreter for the whole catalog (:data:`RUN_ALL`)
instead of one per file: ``chaos validate`` through Chaos Toolkit's own click command (what
the ``chaos`` script calls), ``gpuchaos validate`` through :func:`harness.cli.main` (what
``python -m harness`` calls); each file's exit code and output are kept apart. Starting an
interpreter with chaoslib or the harness costs 1-2 s of CPU, 24 times before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOG = sorted((ROOT / "experiments").glob("*.yaml"))

#: argv: RESULT_FILE CHAOS_LOG PATH...; writes {path: {"chaos": ..., "gpuchaos": ...}} where
#: each is {"code", "stdout", "stderr"} (chaos: its console output in "stdout").
RUN_ALL = r"""
import contextlib, io, json, sys
from click.testing import CliRunner
from chaostoolkit.cli import cli
from harness.cli import main

result_file, chaos_log, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
results = {}
for path in paths:
    got = CliRunner().invoke(cli, ["--log-file", chaos_log, "validate", path])
    chaos = {"code": got.exit_code, "stdout": got.output, "stderr": repr(got.exception or "")}
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", path])
    gpuchaos = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
    results[path] = {"chaos": chaos, "gpuchaos": gpuchaos}
with open(result_file, "w") as fh:
    json.dump(results, fh)
"""


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("catalog")
    result = tmp / "result.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_ALL, str(result), str(tmp / "chaostoolkit.log"),
         *map(str, CATALOG)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and result.is_file(), proc.stdout + proc.stderr
    return dict(json.loads(result.read_text()))


@pytest.mark.parametrize("path", CATALOG, ids=[p.stem for p in CATALOG])
def test_chaos_validate_accepts(path: Path, validated: dict[str, Any]) -> None:
    proc = validated[str(path)]["chaos"]
    assert proc["code"] == 0, proc["stdout"] + proc["stderr"]
    assert "experiment syntax and semantic look valid" in proc["stdout"] + proc["stderr"]


@pytest.mark.parametrize("path", CATALOG, ids=[p.stem for p in CATALOG])
def test_gpuchaos_validate_accepts(path: Path, validated: dict[str, Any]) -> None:
    proc = validated[str(path)]["gpuchaos"]
    assert proc["code"] == 0, proc["stderr"]
    assert "valid:" in proc["stdout"]
