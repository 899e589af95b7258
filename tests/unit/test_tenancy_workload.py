"""The workload side of multi-tenancy (issue #20) without processes: the ``--memory-fraction``
flag of both servers, MPS detection, the sharing gauges, the fault hook's ``hog`` (in-process
ASGI, a real CPU tensor), and the MIG device list through a fake NVML."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from harness.platforms.local import devices
from workloads import faulthook, sharing
from workloads.classifier.__main__ import parse_args as classifier_args
from workloads.llm.__main__ import parse_args as llm_args
from workloads.llm.metrics import Metrics

# -- --memory-fraction -------------------------------------------------------------------


@pytest.mark.parametrize("parse", [llm_args, classifier_args])
def test_both_servers_take_a_memory_fraction_in_0_1(parse: Any) -> None:
    assert parse([]).memory_fraction is None
    assert parse(["--memory-fraction", "0.25"]).memory_fraction == 0.25
    assert parse(["--memory-fraction", "1"]).memory_fraction == 1.0
    for bad in ("0", "1.5", "-0.1"):
        with pytest.raises(SystemExit):
            parse(["--memory-fraction", bad])


def test_a_fraction_on_cpu_is_logged_as_having_no_effect(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="workloads.sharing")
    assert sharing.apply_memory_fraction("cpu", None) is False
    assert not caplog.records
    assert sharing.apply_memory_fraction("cpu", 0.3) is False
    assert "no effect on cpu" in caplog.text and "RLIMIT_AS" in caplog.text
    with pytest.raises(ValueError, match="memory fraction"):
        sharing.apply_memory_fraction("cuda:0", 1.5)


# -- MPS -----------------------------------------------------------------------------------


def test_mps_memory_limits_parse_per_device_ordinal() -> None:
    assert sharing.parse_memory_limit("0=2G", 0) == 2 * 2**30
    assert sharing.parse_memory_limit("0=1G,1=512M", 1) == 512 * 2**20
    assert sharing.parse_memory_limit("0=1536MB", 0) == 1536 * 2**20
    assert sharing.parse_memory_limit("1=512M", 0) is None
    assert sharing.parse_memory_limit("0=lots", 0) is None
    assert sharing.device_ordinal("cuda:3") == 3 and sharing.device_ordinal("cuda") == 0


def test_mps_is_active_only_with_the_daemons_control_pipe(tmp_path: Path) -> None:
    env = {
        sharing.MPS_PIPE_ENV: str(tmp_path),
        sharing.MPS_MEM_LIMIT_ENV: "0=1G,1=2G",
        sharing.MPS_THREADS_ENV: "50",
    }
    status = sharing.mps_status("cuda:1", env)
    assert not status.active and status.pipe_dir == str(tmp_path)  # no pipe yet
    assert status.memory_limit_bytes == 2 * 2**30 and status.thread_percentage == 50.0
    (tmp_path / "control").write_text("")  # a plain file is no daemon's pipe
    assert not sharing.mps_status("cuda:1", env).active
    (tmp_path / "control").unlink()
    os.mkfifo(tmp_path / "control")
    assert sharing.mps_status("cuda:1", env).active
    assert not sharing.mps_status("cpu", env).active  # a CPU replica is no MPS client
    none = sharing.mps_status("cuda:0", {sharing.MPS_PIPE_ENV: str(tmp_path / "nowhere")})
    assert not none.active and none.memory_limit_bytes is None and none.thread_percentage is None


def _gauges(metrics: Metrics) -> dict[str, float]:
    text = metrics.render().decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(("gpuchaos_memory_fraction", "gpuchaos_mps", "gpuchaos_fault_hog"))
    }


def test_the_sharing_gauges_say_what_is_in_force() -> None:
    held = [0.0]
    metrics = Metrics("tiny", "r-0", "cpu")
    enforced = metrics.track_sharing(0.4, False, None, lambda: held[0])
    held[0] = 3 * 2**20
    assert _gauges(metrics) == {
        "gpuchaos_memory_fraction": 0.4,
        "gpuchaos_memory_fraction_enforced": 0.0,
        "gpuchaos_mps_active": 0.0,
        "gpuchaos_mps_memory_limit_bytes": 0.0,
        "gpuchaos_fault_hog_bytes": 3 * 2**20,
    }
    enforced.set(1)
    other = Metrics("tiny", "r-1", "cuda:0")
    other.track_sharing(None, True, 2**30, lambda: 0.0)
    gauges = _gauges(other)
    assert gauges["gpuchaos_memory_fraction"] == 1.0  # no fraction: the whole device
    assert gauges["gpuchaos_mps_active"] == 1.0
    assert gauges["gpuchaos_mps_memory_limit_bytes"] == 2**30
    assert _gauges(metrics)["gpuchaos_memory_fraction_enforced"] == 1.0


# -- the hog (in-process ASGI) -------------------------------------------------------------


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"inner"})


def _call(app: Any, method: str, body: Any = None, token: str = "s3cret") -> tuple[int, Any]:
    headers = [(b"x-gpuchaos-fault-token", token.encode())]
    raw = b"" if body is None else json.dumps(body).encode()
    scope = {"type": "http", "method": method, "path": faulthook.PATH, "headers": headers}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(payload)


def test_the_hog_holds_real_memory_until_clear_and_adds_up() -> None:
    hook = faulthook.FaultHook()
    app = faulthook.FaultHookMiddleware(_inner, "s3cret", hook)
    status, state = _call(app, "GET")
    assert status == 200 and state["hog_mib"] == 0 and state["hog_error"] is None
    status, state = _call(app, "POST", {"kind": "hog", "mib": 8})
    assert status == 200 and state["hog_mib"] == 8
    status, state = _call(app, "POST", {"op": "hog", "mib": 4.5})  # op: another name for kind
    assert status == 200 and state["hog_mib"] == 12.5
    blocks = hook.hog._blocks
    assert [b.numel() for b in blocks] == [8 * 2**20, int(4.5 * 2**20)]
    assert all(int(b[-1]) == 1 for b in blocks)  # written, not only reserved
    assert _call(app, "GET")[1]["hog_mib"] == 12.5
    status, state = _call(app, "POST", {"kind": "clear"})
    assert status == 200 and state["hog_mib"] == 0 and not hook.hog._blocks


def test_the_hog_checks_its_arguments_and_the_token() -> None:
    hook = faulthook.FaultHook()
    app = faulthook.FaultHookMiddleware(_inner, "s3cret", hook)
    assert _call(app, "POST", {"kind": "hog", "mib": 8}, token="wrong")[0] == 403
    bad = [
        ({"kind": "hog"}, "hog needs mib"),
        ({"kind": "hog", "mib": "8"}, "hog needs mib"),
        ({"kind": "hog", "mib": True}, "hog needs mib"),
        ({"kind": "hog", "mib": 0}, "mib must be above 0"),
        ({"kind": "hog", "mib": faulthook.MAX_HOG_MIB + 1}, "at most"),
        ({"kind": "throttle", "factor": 2, "mib": 8}, "mib is for hog only"),
        ({"kind": "hog", "op": "hog", "mib": 1}, "kind or op, not both"),
        ({"op": "melt"}, "kind must be one of"),
    ]
    for body, why in bad:
        status, doc = _call(app, "POST", body)
        assert status == 400 and why in doc["error"], (body, doc)
    assert hook.hog.held_bytes == 0


def test_a_hog_that_does_not_fit_is_a_507_with_the_allocators_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = faulthook.FaultHook()
    app = faulthook.FaultHookMiddleware(_inner, "s3cret", hook)
    assert _call(app, "POST", {"kind": "hog", "mib": 2})[0] == 200
    real_ones = torch.ones

    def refuse(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 30.00 GiB. GPU 0 has a total capacity of "
            "139.72 GiB\nOf the allocated memory ..."
        )

    monkeypatch.setattr(torch, "ones", refuse)
    status, doc = _call(app, "POST", {"kind": "hog", "mib": 30 * 1024})
    assert status == faulthook.HOG_FAILED_STATUS
    assert doc["error"].startswith("OutOfMemoryError: CUDA out of memory. Tried to allocate")
    assert "\n" not in doc["error"] and doc["hog_error"] == doc["error"]
    assert doc["hog_mib"] == 2  # the earlier hog still held, nothing more
    monkeypatch.setattr(torch, "ones", real_ones)
    status, state = _call(app, "POST", {"kind": "hog", "mib": 1})
    assert status == 200 and state["hog_mib"] == 3 and state["hog_error"] is None
    _call(app, "POST", {"kind": "clear"})


# -- MIG devices through NVML (a fake module) ----------------------------------------------


class _NotFound(Exception):
    pass


class _NotSupported(Exception):
    pass


def _fake_nvml(mig_mode: int | Exception, slots: dict[int, tuple[Any, int]]) -> Any:
    """A pynvml stand-in: GPU 0 with ``mig_mode`` (or raising it) and MIG devices in
    ``slots`` (index -> (uuid, total bytes)) of 7."""
    calls: list[str] = []

    def mig_mode_of(handle: str) -> tuple[int, int]:
        assert handle == "gpu0"
        if isinstance(mig_mode, Exception):
            raise mig_mode
        return mig_mode, mig_mode

    def mig_handle(handle: str, i: int) -> str:
        if i not in slots:
            raise _NotFound(f"slot {i}")
        return f"mig{i}"

    def memory(handle: str) -> Any:
        return types.SimpleNamespace(total=slots[int(handle[3:])][1], free=0, used=0)

    module = types.SimpleNamespace(
        NVML_DEVICE_MIG_ENABLE=1,
        NVMLError_NotFound=_NotFound,
        nvmlInit=lambda: calls.append("init"),
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlDeviceGetMigMode=mig_mode_of,
        nvmlDeviceGetMaxMigDeviceCount=lambda handle: 7,
        nvmlDeviceGetMigDeviceHandleByIndex=mig_handle,
        nvmlDeviceGetUUID=lambda handle: slots[int(handle[3:])][0],
        nvmlDeviceGetMemoryInfo=memory,
        calls=calls,
    )
    return module


def test_mig_devices_of_a_gpu_in_mig_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    slots = {
        0: ("MIG-4f5d3c7e-1b2a-5d6e-8f90-aabbccddeeff", 19968 * 2**20),
        3: (b"MIG-0a1b2c3d-4e5f-5a6b-7c8d-9e0f1a2b3c4d", 9856 * 2**20),  # older: bytes
    }
    fake = _fake_nvml(1, slots)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    found = devices.mig_devices(0)
    assert [(d.gpu_index, d.index, d.uuid, d.memory_mib) for d in found] == [
        (0, 0, "MIG-4f5d3c7e-1b2a-5d6e-8f90-aabbccddeeff", 19968.0),
        (0, 1, "MIG-0a1b2c3d-4e5f-5a6b-7c8d-9e0f1a2b3c4d", 9856.0),
    ]
    assert found[1].cuda_visible_devices == "MIG-0a1b2c3d-4e5f-5a6b-7c8d-9e0f1a2b3c4d"
    bare = devices.MigDevice(0, 0, "4f5d3c7e", 1.0)
    assert bare.cuda_visible_devices == "MIG-4f5d3c7e"
    assert fake.calls == ["init", "shutdown"]


@pytest.mark.parametrize("mode", [0, _NotSupported("Not Supported")])
def test_no_mig_devices_when_mig_is_off_or_unsupported(
    monkeypatch: pytest.MonkeyPatch, mode: int | Exception
) -> None:
    fake = _fake_nvml(mode, {0: ("MIG-x", 2**30)})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert devices.mig_devices(0) == []
    assert fake.calls == ["init", "shutdown"]  # NVML closed again either way


def test_no_mig_devices_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_driver() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    fake = _fake_nvml(1, {0: ("MIG-x", 2**30)})
    fake.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert devices.mig_devices(0) == []
    assert fake.calls == []
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: ImportError
    assert devices.mig_devices(0) == []
