"""Put the shared deployment back to health between two experiments of a game day.

In order: every fault reverted (:func:`harness.faults.lifecycle.revert_everything`); the
platform restored as deployed (its ``restore``: nodes up, the autoscaler's replicas gone
and its cooldown forgotten, the router's ejections cleared); every replica Ready, a stopped
one resumed and one still not Ready after ``restart_after_s`` restarted; no request in
flight at any replica (its ``/metrics``); then the health gate (:mod:`harness.gameday.gate`).
All of it within the gate's ``timeout_s``, else PlatformError with the reason.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from harness.config import HarnessSpec
from harness.errors import PlatformError
from harness.faults.lifecycle import revert_everything
from harness.gameday.gate import GateResult, health_gate
from harness.gameday.plan import HealthGateSpec
from harness.telemetry.scrape import scrape

log = logging.getLogger(__name__)

_POLL_S = 0.1
#: The gauges of requests a replica holds (vLLM's names, which the reference servers use).
IN_FLIGHT = ("vllm:num_requests_running", "vllm:num_requests_waiting")


@dataclass
class ResetResult:
    """What one reset did and how long it took."""

    seconds: float = 0.0
    actions: list[str] = field(default_factory=list)
    gate: GateResult | None = None


def reset_platform(
    platform: Any, baseline: int, spec: HarnessSpec, gate: HealthGateSpec
) -> ResetResult:
    """Bring ``platform`` back to health for the experiment of ``spec``: ``baseline`` is how
    many replicas it ran when deployed. Raises PlatformError when the gate's time-out
    passes first."""
    started = time.monotonic()
    deadline = started + gate.timeout_s
    result = ResetResult()
    left = revert_everything()
    if left:
        result.actions.append(f"reverted {left} fault(s)")
    restore = getattr(platform, "restore", None)
    if restore is not None:
        result.actions += restore()
    _resume_stopped(platform, result.actions)
    stuck_s = {"unready": gate.restart_after_s, "starting": spec.workload.ready_timeout_s}
    _wait_ready(platform, baseline, stuck_s, deadline, result.actions)
    _wait_drained(platform, deadline)
    result.gate = health_gate(platform.endpoint, spec, gate, deadline)
    result.seconds = time.monotonic() - started
    return result


def _resume_stopped(platform: Any, actions: list[str]) -> None:
    """SIGCONT to a replica process that is stopped (a hang nothing reverted)."""
    for r in platform.replicas():
        if r.pid is None:
            continue
        try:
            proc = psutil.Process(r.pid)
            if proc.status() == psutil.STATUS_STOPPED:
                proc.resume()
                actions.append(f"resumed {r.id}")
        except psutil.Error:
            continue


def _wait_ready(
    platform: Any, baseline: int, stuck_s: dict[str, float], deadline: float, actions: list[str]
) -> None:
    """Until every replica is Ready (and as many as deployed). One Unready for
    ``stuck_s["unready"]`` (a hang that nothing reverted, a process that answers nothing),
    or starting for longer than the workload's ready time-out, is restarted once."""
    started = time.monotonic()
    restarted: set[str] = set()
    while True:
        replicas = platform.replicas()
        unready = [r for r in replicas if r.state != "ready"]
        if not unready and len(replicas) >= baseline:
            return
        now = time.monotonic()
        if now >= deadline:
            what = ", ".join(f"{r.id} {r.state}" for r in unready) or (
                f"{len(replicas)} of {baseline} replicas"
            )
            raise PlatformError(f"replicas not Ready within the health gate's time-out: {what}")
        kill = getattr(platform, "kill_replica", None)
        if kill is not None:
            for r in unready:
                limit = stuck_s.get(r.state)
                if r.id in restarted or r.pid is None or limit is None or now - started < limit:
                    continue
                restarted.add(r.id)
                try:
                    kill(r.id, signal.SIGKILL)
                    actions.append(f"restarted {r.id} ({r.state})")
                    log.warning("reset: replica %s was %s: restarted it", r.id, r.state)
                except PlatformError:
                    continue
        time.sleep(_POLL_S)


def _wait_drained(platform: Any, deadline: float) -> None:
    """Until no replica holds a request (those without a readable /metrics count as empty:
    a cluster's pods are not scraped from here)."""
    while True:
        busy = {}
        for r in platform.replicas():
            if r.port is None:
                continue
            held = scrape(r.port)
            n = sum(held.get(name, 0.0) for name in IN_FLIGHT)
            if n > 0:
                busy[r.id] = n
        if not busy:
            return
        if time.monotonic() >= deadline:
            raise PlatformError(f"requests still in flight at the health gate's time-out: {busy}")
        time.sleep(_POLL_S)
