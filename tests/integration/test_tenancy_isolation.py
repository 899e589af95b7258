"""The core promise of the sharing modes (issue #20), on the CPU stand-ins with real servers:
a neighbour's memory spike fails the OTHER tenant's requests under time-slicing (one memory
pool per device) and not under mig or mps (the spike comes out of the neighbour's own cap);
a neighbour's poisoned context reaches the other tenant under time-slicing and mps (every
context on the GPU, every client of the MPS server), not under mig.

Each mode is one tenant pool of two tenants ("teama", the service; "teamb", the neighbour),
one tiny-model replica each, on one 2-core node; the faults are injected through the Chaos
Toolkit activity functions, as an experiment does, and each tenant is then asked for a large
completion (which needs memory) through its own endpoint."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.chaos import actions
from harness.chaos.context import RunContext, activate
from harness.config import HarnessSpec
from harness.faults.procfs import address_space_limit
from harness.platforms.local.tenancy import TenantPool
from harness.timeline import Timeline
from tests.support.procs import wait_for
from tests.support.state import own_state_dir

READY_TIMEOUT_S = 90.0
#: a completion that needs memory (what the fault's own proof sends; it fits the tiny
#: model's 256-token context). Not sent before the spike: a shape served once may be served
#: again from memory the replica already holds.
LARGE = {"prompt": " ".join(["memory"] * 30), "max_tokens": 32}
SMALL = {"prompt": "hello", "max_tokens": 2}


def _spec(sharing: str) -> HarnessSpec:
    cores = sorted(os.sched_getaffinity(0))[:2]
    tenant: dict[str, Any] = {
        # on-demand: its KV cache grows with each request, so a request needs memory
        "workload": {
            "model": "tiny",
            "max_batch_size": 4,
            "kv_cache": "on-demand",
            "ready_timeout_s": READY_TIMEOUT_S,
        },
        "load": {
            "shape": {"kind": "step", "duration_s": 10, "start": 1, "increment": 0, "step_s": 10}
        },
        "contract": {"memory_mib": 1024},
    }
    return HarnessSpec.model_validate(
        {
            "name": "gpuchaos",
            "platform": {
                "kind": "local",
                "nodes": [{"name": "gpu0", "device": "cpu", "cpus": cores}],
                "restart_backoff_s": 0.2,
                "probe_interval_s": 0.1,
            },
            "tenancy": {
                "sharing": sharing,
                "gpu_memory_mib": 4096,
                "mig_slices": 2,
                "tenants": [{"name": "teama", **tenant}, {"name": "teamb", **tenant}],
            },
        }
    )


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with own_state_dir(tmp_path_factory) as path:
        yield path


#: the modes each isolation test runs under (one pool each, shared by the module's tests)
MODES = pytest.mark.parametrize("pool", ["time-slicing", "mig", "mps"], indirect=True)


@pytest.fixture(scope="module")
def pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, state_dir: Path
) -> Iterator[RunContext]:
    sharing = str(request.param)
    tmp = tmp_path_factory.mktemp(sharing)
    spec = _spec(sharing)
    timeline = Timeline(tmp / "timeline.jsonl")
    platform = TenantPool(spec, timeline, tmp)
    platform.start()
    context = RunContext(platform, timeline, tmp, spec, time.time())  # type: ignore[arg-type]
    try:
        with activate(context):
            yield context
    finally:
        actions.revert_everything()
        platform.stop()


def _ask(ctx: RunContext, tenant: str, body: dict[str, Any]) -> int:
    """The status of one completion sent to the tenant's endpoint (0: no answer)."""
    url = ctx.platform.tenant_endpoint(tenant) + "/v1/completions"  # type: ignore[attr-defined]
    try:
        return httpx.post(url, json=body, timeout=30).status_code
    except httpx.HTTPError:
        return 0


def _during(ctx: RunContext, inject: Any, look: Any) -> tuple[dict[str, Any], Any]:
    """Run the activity ``inject`` (it holds its fault, then reverts it) on a thread; once
    its fault_effect is on the timeline, call ``look``; then wait for the revert. Returns
    the fault_effect's details and what ``look`` returned."""
    mark = len(ctx.timeline.events)
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = inject()
        except Exception as exc:  # the test thread reports it
            out["error"] = exc

    thread = threading.Thread(target=run, name="tenancy-fault", daemon=True)
    thread.start()
    effects: list[dict[str, Any]] = []

    def seen() -> bool:
        effects[:] = [e for e in ctx.timeline.events[mark:] if e["kind"] == "fault_effect"]
        return bool(effects) or "error" in out

    wait_for(seen, 60.0, "the fault's effect")
    assert "error" not in out, out.get("error")
    looked = look()
    thread.join(90.0)
    assert not thread.is_alive() and "error" not in out, out.get("error")
    return effects[0]["details"], looked


@MODES
def test_a_neighbours_memory_spike_reaches_the_other_tenant_only_under_time_slicing(
    pool: RunContext, state_dir: Path
) -> None:
    sharing = pool.platform.sharing  # type: ignore[attr-defined]
    assert _ask(pool, "teama", SMALL) == 200  # before: the service answers
    pids = dict(pool.platform.replica_pids())  # type: ignore[attr-defined]
    limits = {rid: address_space_limit(pid) for rid, pid in pids.items()}

    effect, (service, neighbour) = _during(
        pool,
        lambda: actions.spike_neighbour_memory("teamb", duration_s=2.0),
        lambda: (_ask(pool, "teama", LARGE), _ask(pool, "teamb", LARGE)),
    )

    print(f"{sharing}: {effect}, teama {service}, teamb {neighbour}")
    assert effect["tenant"] == "teamb" and effect["sharing"] == sharing
    if sharing == "time-slicing":
        assert effect["affected"] == ["teama-gpu0-0", "teamb-gpu0-0"]
        assert effect["neighbours_affected"] == ["teama-gpu0-0"]
        assert neighbour != 200 and service != 200  # one memory pool: both starve
    else:
        [rid] = effect["affected"]
        assert rid.startswith("teamb-")
        # the neighbour took all its own cap allowed: its process refused the rest
        assert effect["hog"][rid]["taken_mib"] > 0 and effect["hog"][rid]["capped"]
        assert service == 200  # its own slice / cap: untouched
    # reverted: every limit is back as it was, no fault state is left, and both tenants
    # serve a completion that needs memory again (an OOM is recoverable, as on a GPU)
    assert {rid: address_space_limit(pid) for rid, pid in pids.items()} == limits
    wait_for(lambda: not list(state_dir.glob("*.json")), 10.0, "no fault state file")
    assert (_ask(pool, "teama", LARGE), _ask(pool, "teamb", LARGE)) == (200, 200)


@MODES
def test_a_neighbours_poisoned_context_reaches_the_other_tenant_unless_partitioned(
    pool: RunContext, state_dir: Path
) -> None:
    sharing = pool.platform.sharing  # type: ignore[attr-defined]
    before = dict(pool.platform.replica_pids())  # type: ignore[attr-defined]

    effect, service = _during(
        pool,
        lambda: actions.fault_neighbour_context("teamb", kind="poison", duration_s=1.0),
        lambda: _ask(pool, "teama", SMALL),
    )

    print(f"{sharing}: poisoned {effect['affected']}, teama answered {service}")
    tenants = sorted({a.split("-")[0] for a in effect["affected"]})
    if sharing in ("time-slicing", "mps"):  # one fault domain: every context on the GPU
        assert tenants == ["teama", "teamb"] and len(effect["affected"]) == 2
        assert not effect["contained"] and service != 200
    else:
        assert tenants == ["teamb"] and len(effect["affected"]) == 1
        assert effect["contained"] and service == 200
    # the revert restarted every poisoned replica (a poisoned context clears only so)
    for rid in effect["affected"]:
        wait_for(
            lambda rid=rid: pool.platform.replica_pids().get(rid) not in (None, before[rid]),  # type: ignore[attr-defined]
            READY_TIMEOUT_S,
            f"{rid} restarted",
        )


@pytest.mark.parametrize("pool", ["mig"], indirect=True)
def test_quota_admission_and_recreate_act_through_the_pool(
    pool: RunContext, state_dir: Path
) -> None:
    platform: Any = pool.platform
    mark = len(pool.timeline.events)

    quota = actions.exhaust_quota("teama", duration_s=0.2)
    assert quota["quota"] == 1 and quota["quota_before"] == 1 and quota["in_force"]
    assert platform.quota("teama") == 1

    denied = actions.deny_admission("teama", rule="all", duration_s=0.5)
    assert denied["reason"] and denied["affected"] == denied["denied"][:1]
    (rid,) = denied["affected"]
    assert rid.startswith("teama-")
    events = [e for e in pool.timeline.events[mark:] if e["kind"] == "admission_denied"]
    assert events and events[0]["target"] == rid and events[0]["details"]["tenant"] == "teama"
    assert platform.admission_would_deny("teama") is None  # lifted by the revert
    wait_for(lambda: rid in platform.tenant_replicas("teama"), READY_TIMEOUT_S, f"{rid} back")

    resized = actions.recreate_replica("teamb", memory_mib=512.0)
    assert resized["new_pid"] != resized["old_pid"] and resized["memory_cap_mib"] == 512.0
    assert platform.tenant_replicas("teamb")[resized["replica"]] == resized["new_pid"]
    recreated = [e for e in pool.timeline.events[mark:] if e["kind"] == "replica_recreated"]
    assert recreated and recreated[-1]["details"]["new_pid"] == resized["new_pid"]
    wait_for(lambda: not list(state_dir.glob("*.json")), 10.0, "no fault state file")
