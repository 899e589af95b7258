"""GPU failure modes without processes: the XID table, the GPU objectives and figures of the
scorecard, the fault hook's door and body checks (in-process ASGI), and the CPU stand-in of
a poisoned context in the engine's failure path."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pandas as pd
import pytest

from harness.config import SLOSpec, WorkloadSpec
from harness.report.gpu_faults import gpu_faults_html, gpu_faults_summary
from harness.report.xid import XIDS, describe, xid_table, xids_from_timeline
from harness.scoring.gpu_slos import NO_GPU_NOTE, gpu_fault_figures, gpu_slo_entries
from workloads import faulthook
from workloads.common import engine_failure, failure_status

# -- XID table -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [13, 31, 43, 45, 48, 63, 64, 74, 79, 92, 94, 95])
def test_every_xid_the_issue_names_has_a_meaning_and_an_action(code: int) -> None:
    entry = XIDS[code]
    assert entry.code == code and entry.meaning and entry.action
    assert entry.scope in ("app", "gpu", "node")


def test_the_actions_say_what_nvidia_says() -> None:
    assert "fallen off the bus" in describe(79).meaning and "Drain" in describe(79).action
    assert "reset the GPU" in describe(95).action and describe(95).scope == "gpu"
    assert describe(13).scope == "app" and "restart the application" in describe(13).action
    assert "Double-bit ECC" in describe(48).meaning


def test_an_unknown_xid_is_described_not_an_error() -> None:
    entry = describe(4242)
    assert entry.scope == "unknown" and "XID catalog" in entry.action


def test_injected_xids_count_once_per_fault_effect() -> None:
    timeline = [
        {"time": 10.0, "kind": "fault_start", "target": "n", "details": {"arguments": {"xid": 79}}},
        {"time": 10.1, "kind": "gpu_unhealthy", "target": "n", "details": {"xid": 79}},
        {"time": 10.2, "kind": "fault_effect", "target": "n", "details": {"xid": 79}},
        {"time": 11.0, "kind": "fault_effect", "target": "r", "details": {"xid": True}},
        {"time": 12.0, "kind": "fault_effect", "target": "r", "details": {"checked": "x"}},
    ]
    assert xids_from_timeline(timeline) == [(10.2, "n", 79)]
    rows = xid_table([(10.2, "n", 79, "injected"), (11.0, "gpu0", 79, "telemetry")], t0=10.0)
    assert rows[0]["count"] == 2 and rows[0]["where"] == ["n", "gpu0"]
    assert rows[0]["origin"] == ["injected", "telemetry"] and rows[0]["first_s"] == pytest.approx(
        0.2
    )


# -- GPU figures and objectives --------------------------------------------------------


def _telemetry(rows: list[tuple[float, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["time", "source", "metric", "value"])


def test_xids_come_from_the_timeline_and_from_nvml_rows() -> None:
    timeline = [{"time": 5.0, "kind": "fault_effect", "target": "node-a-0", "details": {"xid": 48}}]
    tel = _telemetry(
        [
            (3.0, "gpu0", "xid", 94),
            (4.0, "gpu0", "utilization_pct", 50.0),
            (4.0, "node-a-0", "xid", 13),
        ]
    )
    figs = gpu_fault_figures(timeline, tel, t0=0.0, load_end=10.0)
    assert figs["xid_count"] == 2  # a replica source is no GPU
    assert [(r["xid"], r["origin"]) for r in figs["xids"]] == [
        (48, ["injected"]),
        (94, ["telemetry"]),
    ]


def test_lost_gpu_figures() -> None:
    timeline = [
        {"time": 10.0, "kind": "gpu_unhealthy", "target": "node-a", "details": {"xid": 79}},
        {
            "time": 10.1,
            "kind": "fault_effect",
            "target": "node-a",
            "details": {"fault": "lose_gpu", "replicas": {"node-a-0": "x", "node-a-1": "y"}},
        },
        {
            "time": 12.0,
            "kind": "replica_ready",
            "target": "node-a-0",
            "details": {"node": "node-a"},
        },
        {
            "time": 14.5,
            "kind": "replica_ready",
            "target": "node-a-0",
            "details": {"node": "node-b"},
        },
        {"time": 40.0, "kind": "gpu_healthy", "target": "node-a", "details": {}},
    ]
    (row,) = gpu_fault_figures(timeline, None, t0=0.0, load_end=60.0)["gpu_unschedulable"]
    assert row["unschedulable_s"] == 30.0 and row["ended"] and row["xid"] == 79
    assert row["ready_elsewhere_s"] == {"node-a-0": 4.5, "node-a-1": None}
    (open_,) = gpu_fault_figures(timeline[:4], None, t0=0.0, load_end=60.0)["gpu_unschedulable"]
    assert open_["unschedulable_s"] == 50.0 and not open_["ended"]  # to the load's end
    card = {"gpu": gpu_fault_figures(timeline, None, 0.0, 60.0)}
    assert "unschedulable 30.0 s" in gpu_faults_html(card)
    assert "node-a-1 never" in "\n".join(gpu_faults_summary(card))


def test_gpu_objectives_are_scored() -> None:
    slos = SLOSpec(gpu_min_utilization_pct=60, gpu_max_xid_errors=0, gpu_max_idle_gpu_s=100)
    gpu = {"utilization_pct": 72.5, "idle_gpu_s": 150.0, "xid_count": 1, "xids": [{"xid": 79}]}
    got = {e["name"]: e for e in gpu_slo_entries(slos, gpu)}
    assert list(got) == ["gpu_min_utilization_pct", "gpu_max_xid_errors", "gpu_max_idle_gpu_s"]
    assert (
        got["gpu_min_utilization_pct"]["passed"]
        and got["gpu_min_utilization_pct"]["comparator"] == ">="
    )
    assert not got["gpu_max_xid_errors"]["passed"] and "XID 79" in got["gpu_max_xid_errors"]["note"]
    assert (
        not got["gpu_max_idle_gpu_s"]["passed"] and got["gpu_max_idle_gpu_s"]["measured"] == 150.0
    )


def test_without_gpu_telemetry_utilization_objectives_say_na_and_are_not_met() -> None:
    slos = SLOSpec(gpu_min_utilization_pct=60, gpu_max_idle_gpu_s=100, gpu_max_xid_errors=0)
    got = {e["name"]: e for e in gpu_slo_entries(slos, {"utilization_pct": None, "xid_count": 0})}
    for name in ("gpu_min_utilization_pct", "gpu_max_idle_gpu_s"):
        assert got[name]["measured"] is None and not got[name]["passed"]
        assert got[name]["note"] == NO_GPU_NOTE and NO_GPU_NOTE.startswith("n/a: no GPU telemetry")
    assert got["gpu_max_xid_errors"]["passed"]  # no XID on a CPU run is measurable: 0


def test_unset_gpu_objectives_are_not_scored_and_bad_ones_refused() -> None:
    assert gpu_slo_entries(SLOSpec(), {"utilization_pct": 10.0}) == []
    assert SLOSpec(weights={"gpu_max_xid_errors": 2}).weights == {"gpu_max_xid_errors": 2}
    with pytest.raises(ValueError, match="gpu_min_utilization_pct"):
        SLOSpec(gpu_min_utilization_pct=101)
    with pytest.raises(ValueError, match="windows: unknown objective"):
        SLOSpec(windows={"gpu_max_xid_errors": "fault"})


def test_workload_liveness_reaches_the_command_line() -> None:
    assert "--liveness" not in WorkloadSpec().server_args()
    args = WorkloadSpec(liveness="deep").server_args()
    assert args[args.index("--liveness") + 1] == "deep"
    with pytest.raises(ValueError, match="liveness"):
        WorkloadSpec(liveness="medium")  # type: ignore[arg-type]


# -- the fault hook (in-process ASGI) --------------------------------------------------


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"inner"})


def _call(
    app: Any, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    headers = [] if token is None else [(b"x-gpuchaos-fault-token", token.encode())]
    raw = b"" if body is None else json.dumps(body).encode()
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    try:
        return sent[0]["status"], json.loads(payload)
    except ValueError:
        return sent[0]["status"], payload


def test_without_a_token_the_hook_does_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faulthook.TOKEN_ENV, raising=False)
    assert faulthook.mount(_app, "cpu") is _app  # /admin/fault is the app's own 404
    monkeypatch.setenv(faulthook.TOKEN_ENV, "")
    assert faulthook.mount(_app, "cpu") is _app


def test_the_hook_checks_token_kind_and_arguments() -> None:
    hook = faulthook.FaultHook()
    app = faulthook.FaultHookMiddleware(_app, "s3cret", hook)
    assert _call(app, "GET", "/admin/fault")[0] == 403
    assert _call(app, "POST", "/admin/fault", {"kind": "poison"}, token="wrong")[0] == 403
    assert _call(app, "GET", "/other")[1] == b"inner"
    bad = [
        ({"kind": "melt"}, "kind must be one of"),
        ({"kind": "throttle", "factor": 0.5}, "factor must be from 1"),
        ({"kind": "throttle", "factor": True}, "factor must be a number"),
        ({"kind": "poison", "factor": 2}, "factor is for throttle only"),
        ({"kind": "poison", "xid": "79"}, "xid must be an integer"),
        ({"kind": "clear", "extra": 1}, "unknown field"),
    ]
    for body, why in bad:
        status, doc = _call(app, "POST", "/admin/fault", body, token="s3cret")
        assert status == 400 and why in doc["error"], (body, doc)
    status, state = _call(
        app, "POST", "/admin/fault", {"kind": "throttle", "factor": 3}, token="s3cret"
    )
    assert status == 200 and state["throttle"] == 3.0 and not state["poisoned"]
    _, state = _call(app, "POST", "/admin/fault", {"kind": "poison", "xid": 94}, token="s3cret")
    assert state["poisoned"] and state["xid"] == 94
    _, state = _call(app, "POST", "/admin/fault", {"kind": "clear"}, token="s3cret")
    assert state["throttle"] == 1.0 and state["poisoned"]  # only a restart clears a poison


def test_a_poisoned_hook_fails_every_step_with_the_cuda_error() -> None:
    hook = faulthook.FaultHook()
    with hook.step():
        pass
    hook.apply("poison", xid=79)
    with pytest.raises(faulthook.PoisonedContext) as caught, hook.step():
        pass
    assert str(caught.value).startswith("CUDA error: device-side assert triggered")
    assert failure_status(caught.value) == 500
    message = engine_failure(caught.value, "other", 1, "cpu", None)
    assert message.startswith("CUDA error:")
    assert failure_status(RuntimeError("boom")) == 503
    assert asyncio.run(hook.deep_live(1.0)) is not None  # deep liveness fails
    assert asyncio.run(faulthook.liveness("shallow", True)) is None


def test_the_bind_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faulthook.TOKEN_ENV, "t")
    assert faulthook.bind_problem("127.0.0.1", False) is None
    assert faulthook.bind_problem("::1", False) is None
    assert faulthook.bind_problem("0.0.0.0", True) is None  # --fault-hook-remote
    assert "--fault-hook-remote" in str(faulthook.bind_problem("0.0.0.0", False))
    monkeypatch.delenv(faulthook.TOKEN_ENV)
    assert faulthook.bind_problem("0.0.0.0", False) is None  # no hook, nothing to refuse
