"""Per-tenant scoring of a tenancy run on synthetic records with known answers
(tests/support/tenancy_runs.py): each tenant scored by the existing scorer on its view of
the folder, the blast radius of teamb's fault on teama, GPU-seconds per sharing mode's share,
the capacity teama's quota denied, the combined verdict, and ``gpuchaos score`` reproducing
``scorecard.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.cli import main
from harness.rundir import RunDir
from harness.scoring.rundir import score_run_dir
from harness.scoring.tenancy import combine_verdicts
from harness.scoring.tenancy_blast import aimed_at, blast_line, blast_radius
from harness.scoring.tenancy_cost import denied_capacity, ready_spans
from harness.scoring.tenancy_view import tenant_dir, tenant_events, view_source
from tests.support.tenancy_runs import FAILED, REPLICAS, T0, make_tenancy_run


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run = make_tenancy_run(tmp_path_factory.mktemp("tenancy") / "run")
    return run, score_run_dir(run)


def test_each_tenant_is_scored_by_the_existing_scorer_on_its_own_records(
    scored: tuple[Path, dict[str, Any]],
) -> None:
    _, card = scored
    assert card["sharing"] == "time-slicing"
    assert set(card["tenants"]) == {"teama", "teamb"}
    a, b = card["tenants"]["teama"], card["tenants"]["teamb"]
    assert a["tenant"] == "teama" and a["run"]["requests"] == 400
    assert a["run"]["errors"] == FAILED
    assert b["run"]["errors"] == 0 and b["verdict"] == "pass"
    # the fault (no tenant in its start's details) is in every tenant's view
    assert a["recovery"]["fault"] and b["recovery"]["fault"]
    by_name = {e["name"]: e for e in a["slos"]}
    assert by_name["error_rate"]["measured"] == pytest.approx(FAILED / 400)
    assert by_name["p99_latency_ms"]["measured"] == pytest.approx(2000.0)  # timeout 2 s
    assert a["verdict"] == "fail"


def test_combined_slos_are_named_per_tenant(scored: tuple[Path, dict[str, Any]]) -> None:
    _, card = scored
    names = [e["name"] for e in card["slos"]]
    assert names == [
        "teama: p99_latency_ms",
        "teama: error_rate",
        "teama: gpu_min_utilization_pct",
        "teamb: p99_latency_ms",
        "teamb: error_rate",
    ]
    assert all(e["tenant"] == e["name"].split(":")[0] for e in card["slos"])
    assert card["run"]["requests"] == 800 and card["run"]["errors"] == FAILED


def test_blast_radius_of_teambs_fault_on_teama(scored: tuple[Path, dict[str, Any]]) -> None:
    _, card = scored
    [entry] = card["blast_radius"]  # one fault, one other tenant
    assert (entry["tenant"], entry["victim"], entry["fault"]) == (
        "teamb",
        "teama",
        "spike_neighbour_memory",
    )
    assert entry["start_s"] == pytest.approx(10.0) and entry["end_s"] == pytest.approx(20.0)
    assert entry["requests"] == 100 and entry["failed_requests"] == FAILED
    assert entry["error_rate"] == pytest.approx(0.37)
    assert entry["requests_before"] == 100 and entry["error_rate_before"] == 0.0
    assert entry["p99_before_ms"] == pytest.approx(50.0)
    assert entry["p99_ms"] == pytest.approx(2000.0)
    assert entry["p99_delta_ms"] == pytest.approx(1950.0)
    assert entry["slos_failed"] == ["p99_latency_ms", "error_rate", "gpu_min_utilization_pct"]
    assert entry["line"] == (
        "teamb's spike_neighbour_memory cost teama 37 failed requests (37.0% errors vs 0.0% "
        "before), p99 +1,950 ms; teama missed p99_latency_ms, error_rate, "
        "gpu_min_utilization_pct"
    )


def test_a_fault_is_aimed_by_details_arguments_effect_or_target() -> None:
    names = ["teama", "teamb"]
    window = (T0, T0 + 5)
    assert aimed_at({"target": "x", "details": {"tenant": "teama"}}, window, [], names) == "teama"
    args = {"target": "x", "details": {"arguments": {"tenant": "teamb"}}}
    assert aimed_at(args, window, [], names) == "teamb"
    effect = {"kind": "fault_effect", "target": "x", "time": T0 + 1, "details": {"tenant": "teama"}}
    assert aimed_at({"target": "x", "details": {}}, window, [effect], names) == "teama"
    assert aimed_at({"target": "teamb-node-a-0", "details": {}}, window, [], names) == "teamb"
    assert aimed_at({"target": "node-a", "details": {}}, window, [], names) is None


def test_blast_line_without_latency_and_one_request() -> None:
    entry = {
        "tenant": "teamb",
        "fault": "fault_neighbour_context",
        "victim": "teama",
        "failed_requests": 1,
        "error_rate": 0.5,
        "error_rate_before": None,
        "p99_delta_ms": None,
    }
    assert blast_line(entry) == (
        "teamb's fault_neighbour_context cost teama 1 failed request (50.0% errors vs n/a "
        "before), p99 n/a"
    )


@pytest.mark.parametrize(
    ("sharing", "allocated", "used", "util"),
    [
        # share 0.5 (contract.gpu_share); 4 shared cores: teama 0.5 core, teamb 1 core busy
        ("time-slicing", {"teama": 19.0, "teamb": 20.0}, {"teama": 4.75, "teamb": 10.0}, 25.0),
        ("mps", {"teama": 19.0, "teamb": 20.0}, {"teama": 4.75, "teamb": 10.0}, 25.0),
        # a quarter slice each (mig_slices 4), a core of its own
        ("mig", {"teama": 9.5, "teamb": 10.0}, {"teama": 4.75, "teamb": 10.0}, 50.0),
        # a whole GPU (pool node of 4 cores) each
        ("exclusive", {"teama": 38.0, "teamb": 40.0}, {"teama": 4.75, "teamb": 10.0}, 12.5),
    ],
)
def test_gpu_seconds_per_mode_share(
    tmp_path: Path,
    sharing: str,
    allocated: dict[str, float],
    used: dict[str, float],
    util: float,
) -> None:
    card = score_run_dir(make_tenancy_run(tmp_path / "run", sharing), write=False)
    cost = card["cost"]
    assert cost["teama"]["replica_seconds_ready"] == pytest.approx(38.0)  # 40 s - 2 s recreate
    assert cost["teamb"]["replica_seconds_ready"] == pytest.approx(40.0)
    for name in ("teama", "teamb"):
        assert cost[name]["source"] == "cpu"
        assert cost[name]["gpu_seconds_allocated"] == pytest.approx(allocated[name])
        assert cost[name]["gpu_seconds_used"] == pytest.approx(used[name])
        idle = allocated[name] - used[name]
        assert cost[name]["gpu_seconds_idle"] == pytest.approx(idle)
    assert cost["teama"]["utilization_pct"] == pytest.approx(util)
    assert cost["teama"]["wasted"] is True
    # price 3.6 per GPU-hour: a thousandth per GPU-second; teamb set no price
    assert cost["teama"]["cost"] == pytest.approx(allocated["teama"] / 1000.0)
    assert cost["teamb"]["cost"] is None
    rid = REPLICAS[sharing]["teama"]
    assert cost["teama"]["replicas"][rid]["gpu_seconds_allocated"] == pytest.approx(
        allocated["teama"]
    )
    # the utilization SLO is measured on the tenant's own utilization
    slos = card["tenants"]["teama"]["slos"]
    slo = next(e for e in slos if e["name"] == "gpu_min_utilization_pct")
    assert slo["measured"] == pytest.approx(util) and slo["passed"] is False


def test_ready_spans_are_clipped_to_the_load_and_end_at_exit_or_recreate() -> None:
    events = [
        {"time": T0 - 3, "kind": "replica_ready", "target": "r"},
        {"time": T0 + 4, "kind": "replica_exit", "target": "r"},
        {"time": T0 + 6, "kind": "replica_ready", "target": "r"},
        {"time": T0 + 8, "kind": "replica_unready", "target": "r"},
        {"time": T0 + 9, "kind": "replica_ready", "target": "r"},
    ]
    assert ready_spans(events, T0, T0 + 10) == {
        "r": [(T0, T0 + 4), (T0 + 6, T0 + 8), (T0 + 9, T0 + 10)]
    }


def test_quota_refusals_deny_exact_replica_seconds(scored: tuple[Path, dict[str, Any]]) -> None:
    _, card = scored
    teama = card["denied_capacity"]["teama"]
    # (3 - 2) x (25 - 5) + (4 - 2) x (40 - 25)
    assert teama["refusals"] == 2 and teama["replica_seconds_denied"] == pytest.approx(50.0)
    assert teama["first_s"] == pytest.approx(5.0) and teama["max_wanted"] == 4
    assert card["denied_capacity"]["teamb"]["refusals"] == 0
    assert card["admission_denials"]["teamb"]["denials"] == 2
    assert card["admission_denials"]["teamb"]["rules"] == {"memory-cap": 2}
    assert card["admission_denials"]["teama"]["denials"] == 0
    [recreated] = card["recreated"]["teama"]
    assert recreated["at_s"] == pytest.approx(30.0) and recreated["memory_mib"] == 512
    # a refusal by target alone (no details.tenant) counts too
    refusal = {"wanted": 5, "quota": 3}
    bare = [{"time": T0 + 1, "kind": "quota_refused", "target": "teamb", "details": refusal}]
    assert denied_capacity(bare, ["teama", "teamb"], T0, T0 + 11)["teamb"][
        "replica_seconds_denied"
    ] == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("codes", "verdict", "exit_code"),
    [
        ({"a": ("pass", 0), "b": ("pass", 0)}, "pass", 0),
        ({"a": ("pass", 0), "b": ("fail", 1)}, "fail", 1),
        ({"a": ("incomplete", 2), "b": ("fail", 1)}, "incomplete", 2),
        ({"a": ("fail", 1), "b": ("aborted", 2)}, "aborted", 2),
    ],
)
def test_the_worst_tenant_sets_the_verdict(
    codes: dict[str, tuple[str, int]], verdict: str, exit_code: int
) -> None:
    cards = {n: {"verdict": v, "exit_code": c} for n, (v, c) in codes.items()}
    combined = combine_verdicts(cards)
    assert (combined["verdict"], combined["exit_code"]) == (verdict, exit_code)


def test_a_run_where_every_tenant_passes_passes(tmp_path: Path) -> None:
    run = make_tenancy_run(tmp_path / "run")
    doc = (tenant_dir(run, "teama") / "experiment.yaml").read_text(encoding="utf-8")
    loose = doc.replace("p99_latency_ms: 500", "p99_latency_ms: 5000").replace(
        "error_rate: 0.05", "error_rate: 0.5"
    )
    (tenant_dir(run, "teama") / "experiment.yaml").write_text(loose, encoding="utf-8")
    card = score_run_dir(run, write=False)
    # teama's utilization SLO (25% < 60%) is the one objective it still misses
    missed = [e["name"] for e in card["slos"] if not e["passed"]]
    assert missed == ["teama: gpu_min_utilization_pct"]
    assert card["verdict"] == "fail" and card["exit_code"] == 1
    assert card["note"] == "tenant(s) that failed: teama"


def test_views_hold_the_tenants_events_and_telemetry(scored: tuple[Path, dict[str, Any]]) -> None:
    run, _ = scored
    view = RunDir(tenant_dir(run, "teama"))
    kinds = [json.loads(line)["kind"] for line in view.timeline.read_text().splitlines()]
    assert "quota_refused" in kinds and "admission_denied" not in kinds  # teamb's
    assert "fault_effect" not in kinds  # aimed at teamb
    assert kinds.count("fault_start") == 1 and kinds.count("run_end") == 1
    sources = {line.split(",")[1] for line in view.telemetry.read_text().splitlines()[1:]}
    assert sources == {"system", "platform", "teama-node-a-0"}
    events = [{"details": {"tenant": "teamb"}}, {"details": {}}, {"details": {"tenant": "teama"}}]
    assert tenant_events(events, "teama") == events[1:]
    assert view.scorecard.is_file() and view.slis.is_file()
    saved = json.loads(view.scorecard.read_text())
    assert saved["tenant"] == "teama"
    slo = next(e for e in saved["slos"] if e["name"] == "gpu_min_utilization_pct")
    assert slo["measured"] == 25.0


def test_score_reproduces_the_scorecard(
    scored: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, card = scored
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, symlinks=True)
    for name in ("teama", "teamb"):  # as the run leaves it: no views, no scorecards
        own = RunDir(tenant_dir(copy, name))
        for path in (own.timeline, own.telemetry, own.scorecard, own.slis):
            path.unlink()
    RunDir(copy).scorecard.unlink()
    assert main(["score", str(copy)]) == 1
    out = capsys.readouterr().out
    again = json.loads(RunDir(copy).scorecard.read_text())
    original = json.loads(RunDir(run).scorecard.read_text())
    original["meta"]["run_dir"] = "copy"
    for name in ("teama", "teamb"):
        original["tenants"][name]["meta"]["run_dir"] = name
    assert again == original
    assert card == json.loads(RunDir(run).scorecard.read_text())
    assert "teama: p99_latency_ms" in out and "blast radius" in out


def test_missing_tenant_experiment_is_derived_with_a_warning(tmp_path: Path) -> None:
    run = make_tenancy_run(tmp_path / "run")
    (tenant_dir(run, "teamb") / "experiment.yaml").unlink()
    card = score_run_dir(run, write=False)
    assert card["tenants"]["teamb"]["verdict"] == "pass"
    assert any("tenants/teamb/experiment.yaml: missing" in w for w in card["warnings"])


def test_each_view_has_its_own_load_generator_as_locust() -> None:
    names = ["teama", "teamb"]
    assert view_source("locust", "teama", names) == "locust"  # the first tenant's
    assert view_source("locust", "teamb", names) is None
    assert view_source("locust-teamb", "teamb", names) == "locust"
    assert view_source("locust-teamb", "teama", names) is None
    assert view_source("teamb-node-a-0", "teama", names) is None
    assert view_source("gpu0", "teama", names) == "gpu0"


def test_back_to_back_faults_compare_with_the_baseline_before_the_first() -> None:
    """teamb's load spike ends the instant its memory spike starts: the memory spike's
    "before" window would be empty, so it is compared with the baseline before the first
    fault instead (teama: 10 good requests there, then 4 of 5 failed in the spike)."""
    rows = [(T0 + 0.5 + i, 200) for i in range(10)]  # baseline, before the first fault
    rows += [(T0 + 10.5 + i, 200) for i in range(5)]  # the load spike: all good
    rows += [(T0 + 15.5 + i, 503 if i else 200) for i in range(5)]  # the memory spike
    frame = pd.DataFrame(
        {
            "start": [end - 0.1 for end, _ in rows],
            "end": [end for end, _ in rows],
            "latency_ms": [100.0] * len(rows),
            "status": [status for _, status in rows],
            "error": ["" if status == 200 else "HTTP 503" for _, status in rows],
        }
    )
    events = [
        {"time": T0 + 10, "kind": "fault_start", "target": "teamb",
         "details": {"fault": "spike_neighbour_load", "tenant": "teamb"}},
        {"time": T0 + 15, "kind": "fault_end", "target": "teamb",
         "details": {"fault": "spike_neighbour_load"}},
        {"time": T0 + 15, "kind": "fault_start", "target": "teamb",
         "details": {"fault": "spike_neighbour_memory", "tenant": "teamb"}},
        {"time": T0 + 20, "kind": "fault_end", "target": "teamb",
         "details": {"fault": "spike_neighbour_memory"}},
    ]  # fmt: skip
    empty = frame.iloc[0:0]
    load, memory = blast_radius(
        events, {"teama": frame, "teamb": empty}, {"teama": 2000.0, "teamb": 2000.0}, {},
        T0, T0 + 20,
    )  # fmt: skip
    assert load["requests_before"] == 10 and load["before_start_s"] == 0.0
    assert memory["fault"] == "spike_neighbour_memory"
    assert memory["failed_requests"] == 4 and memory["error_rate"] == pytest.approx(0.8)
    assert memory["requests_before"] == 10 and memory["error_rate_before"] == 0.0
    assert memory["before_start_s"] == 0.0
