"""``gpuchaos compare`` and ``gpuchaos score`` on synthetic run folders."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.cli import main
from harness.compare import DEFAULT_GATES, compare, parse_thresholds
from harness.errors import ConfigError
from harness.rundir import (
    EXPERIMENT_FILE,
    REQUESTS_FILE,
    SCORECARD_FILE,
    TELEMETRY_FILE,
    TIMELINE_FILE,
)
from harness.scoring.rundir import score_run_dir

T0 = 1_700_000_000.0
SLOS = {"p99_latency_ms": 50_000, "error_rate": 0.3, "recovery_s": 30, "hold_s": 2}


def make_run(
    root: Path, name: str, outage: tuple[float, float] | None, *, latency_ms: float = 100.0
) -> Path:
    """A run folder: 60 s of 20 rps, requests starting inside ``outage`` fail; the fault
    runs from 20 s to 25 s."""
    run = root / name
    run.mkdir()
    doc = {
        "title": "synthetic",
        "version": "1.0.0",
        "extensions": [
            {
                "name": "gpuchaos",
                "platform": {"kind": "local", "nodes": [{"name": "node-a"}]},
                "load": {
                    "shape": {
                        "duration_s": 60,
                        "baseline_users": 4,
                        "spike_start_s": 10,
                        "spike_duration_s": 30,
                    }
                },
                "slos": SLOS,
            }
        ],
    }
    (run / EXPERIMENT_FILE).write_text(yaml.safe_dump(doc), encoding="utf-8")
    starts = T0 + np.arange(0.0, 60.0, 0.05)
    df = pd.DataFrame(
        {
            "start": starts,
            "end": starts + latency_ms / 1000.0,
            "latency_ms": latency_ms,
            "ttft_ms": latency_ms / 4,
            "output_tokens": 16,
            "status": 200,
            "error": "",
            "replica": "node-a-0",
            "phase": "baseline",
        }
    )
    if outage is not None:
        hit = (starts - T0 >= outage[0]) & (starts - T0 < outage[1])
        df.loc[hit, ["status", "error", "ttft_ms"]] = [503, "refused", math.nan]
    df.to_csv(run / REQUESTS_FILE, index=False, float_format="%.6f")
    events = [
        (0.0, "load_start", "locust", {}),
        (0.0, "phase", "load", {"phase": "baseline"}),
        (10.0, "phase", "load", {"phase": "spike"}),
        (20.0, "fault_start", "node-a", {}),
        (25.0, "fault_end", "node-a", {}),
        (26.0, "replica_ready", "node-a-0", {}),
        (60.0, "load_end", "locust", {}),
    ]
    (run / TIMELINE_FILE).write_text(
        "".join(
            json.dumps({"time": T0 + t, "kind": k, "target": tg, "details": d}) + "\n"
            for t, k, tg, d in events
        ),
        encoding="utf-8",
    )
    (run / TELEMETRY_FILE).write_text(
        "time,source,metric,value\n"
        + "".join(f"{T0 + s},gpu0,utilization_pct,40\n" for s in range(60)),
        encoding="utf-8",
    )
    return run


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    return {
        "base": make_run(tmp_path, "base", (20.0, 25.0)),
        "same": make_run(tmp_path, "same", (20.0, 25.0)),
        "slow": make_run(tmp_path, "slow", (20.0, 32.0)),  # recovers 7 s later
        "never": make_run(tmp_path, "never", (20.0, 1e9)),
        "faster": make_run(tmp_path, "faster", (20.0, 22.0)),
    }


def test_score_reproduces_scorecard_byte_for_byte(runs: dict[str, Path]) -> None:
    run = runs["base"]
    score_run_dir(run)
    first = (run / SCORECARD_FILE).read_bytes()
    assert main(["score", str(run)]) == 0
    assert (run / SCORECARD_FILE).read_bytes() == first
    card = json.loads(first)
    assert card["gpu"]["gpus"] == 1 and card["gpu"]["idle_gpu_s"] == pytest.approx(36.0)
    assert card["recovery"]["time_to_recover_s"] == pytest.approx(5.0, abs=1.0)


def test_compare_cli_exit_codes(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = str(runs["base"])
    assert main(["compare", base, str(runs["same"])]) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "time_to_recover_s" in out
    assert main(["compare", base, str(runs["faster"])]) == 0
    assert "better" in capsys.readouterr().out
    assert main(["compare", base, str(runs["slow"])]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "time_to_recover_s" in out.splitlines()[-1]
    # a looser threshold for that figure lets it through, the others still gate
    code = main(
        ["compare", base, str(runs["slow"]), "--max-regression", "time_to_recover_s=500",
         "--max-regression", "1000"]
    )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    assert main(["compare", base, str(runs["never"])]) == 1
    assert "not recovered" in capsys.readouterr().out
    # a scorecard file works as well as a folder
    score_run_dir(runs["same"])
    assert main(["compare", base, str(runs["same"] / SCORECARD_FILE)]) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "MISSING", "BASE"],
        ["compare", "BASE", "BASE", "--max-regression", "lots"],
        ["compare", "BASE", "BASE", "--max-regression", "p99=5"],
        ["compare", "BASE", "BASE", "--max-regression", "-5"],
        ["compare", "BASE", "JUNK"],
    ],
)
def test_compare_bad_input_exits_2(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2")
    subst = {"BASE": str(runs["base"]), "MISSING": str(tmp_path / "nope"), "JUNK": str(junk)}
    assert main([subst.get(a, a) for a in args]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gpuchaos:")]
    assert len(errors) == 1 and errors[0].startswith("gpuchaos: error:")


def test_parse_thresholds() -> None:
    gates = parse_thresholds(["10", "requests_lost=0"])
    assert all(gates[name] == 10.0 for name in DEFAULT_GATES)
    assert gates["requests_lost"] == 0.0
    with pytest.raises(ConfigError, match="unknown figure"):
        parse_thresholds(["nope=3"])


def _card(**figures: Any) -> dict[str, Any]:
    return {
        "verdict": figures.pop("verdict", "pass"),
        "run": {"p99_latency_ms": figures.pop("p99", 100.0)},
        "recovery": {"recovered": True, "time_to_recover_s": figures.pop("ttr", 10.0)},
        "error_budget": {"spent": figures.pop("spent", 0.1)},
        "score": {"value": figures.pop("score", 90.0)},
    }


def test_compare_thresholds_and_tolerances() -> None:
    gates = parse_thresholds([])
    assert compare(_card(), _card(ttr=11.9), gates)["regressions"] == []  # +19%
    assert compare(_card(), _card(ttr=12.5), gates)["regressions"]  # +25%
    assert compare(_card(), _card(p99=125.0), gates)["regressions"]  # p99 up 25%
    assert compare(_card(), _card(spent=0.5), gates)["regressions"]  # budget spent x5
    # from 0 s to 0.5 s is inside the one-bucket tolerance: no regression
    assert compare(_card(ttr=0.0), _card(ttr=0.5), gates)["regressions"] == []
    result = compare(_card(), _card(verdict="fail"), gates)
    assert result["regressions"] == ["verdict: pass -> fail"]
    # a figure missing on one side is n/a, never a crash
    rows = compare({"verdict": "pass", "run": {}}, _card(), gates)["rows"]
    assert {r["figure"]: r["result"] for r in rows}["p99_latency_ms"] == "n/a"
