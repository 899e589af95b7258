"""The health gate between two experiments: a trickle of real requests until the next
experiment's latency and error SLOs have held for ``hold_s`` seconds in a row.

Why not Locust: starting it costs seconds, and the gate wants one request at a time at a
few per second, the answers checked as they come. The requests are the ones the next
experiment's load sends (the same path, model, headers and TLS settings), made small: a
short prompt and a few tokens, not streamed. A protocol of your own (``load.user:
module:Class``) is not known here; the gate then asks ``GET /health/ready``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx

from harness.config import HarnessSpec
from harness.connection import connection_headers, tls_verify
from harness.errors import PlatformError
from harness.gameday.plan import HealthGateSpec

log = logging.getLogger(__name__)

PROMPT = "the health gate of a gpuchaos game day asks"
GATE_TOKENS = 4
_CHAT = ("openai-chat", "openai-chat-stream")
_COMPLETION = ("openai", "openai-stream")


@dataclass(frozen=True)
class GateResult:
    """What the gate saw over its last ``hold_s`` seconds, when it opened."""

    seconds: float
    requests: int  # sent in all
    window_requests: int
    p50_ms: float
    p99_ms: float


class _Request:
    """The one request the gate repeats, built once from the next experiment's load."""

    def __init__(self, client: httpx.Client, spec: HarnessSpec) -> None:
        load = spec.load
        self.method, self.path, self.body = "GET", "/health/ready", None
        model = load.model
        if load.user in _COMPLETION:
            self.method, self.path = "POST", "/v1/completions"
            self.body = {
                "model": model or "gpuchaos", "prompt": PROMPT, "max_tokens": GATE_TOKENS,
                "stream": False,
            }  # fmt: skip
        elif load.user in _CHAT:
            self.method, self.path = "POST", "/v1/chat/completions"
            self.body = {
                "model": model or _first_model(client),
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": GATE_TOKENS,
                "stream": False,
            }
        elif load.user == "kserve-v2":
            from harness.load.sampling import v2_payload

            name = model or "classifier"
            meta = client.get(f"/v2/models/{name}")
            meta.raise_for_status()
            self.method, self.path = "POST", f"/v2/models/{name}/infer"
            self.body = v2_payload(meta.json()["inputs"], random.Random(0))

    def send(self, client: httpx.Client) -> bool:
        answer = client.request(self.method, self.path, json=self.body)
        answer.read()
        return answer.status_code == 200


def _first_model(client: httpx.Client) -> str:
    listed = client.get("/v1/models")
    listed.raise_for_status()
    data = listed.json().get("data") or []
    return str(data[0]["id"]) if data else "gpuchaos"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _holds(window: list[tuple[float, bool, float]], spec: HarnessSpec) -> str | None:
    """Why the window misses the SLOs (None: it holds)."""
    slos = spec.slos
    failed = sum(1 for _, ok, _ in window if not ok)
    allowed = slos.error_rate if slos.error_rate is not None else 0.0
    if failed / len(window) > allowed:
        return f"{failed} of {len(window)} requests failed"
    latencies = [ms for _, _, ms in window]
    for name, q in (("p50_latency_ms", 0.5), ("p99_latency_ms", 0.99)):
        objective = getattr(slos, name)
        measured = _percentile(latencies, q)
        if objective is not None and measured > objective:
            return f"{name} {measured:.0f} > {objective:g}"
    return None


def health_gate(
    endpoint: str, spec: HarnessSpec, gate: HealthGateSpec, deadline: float
) -> GateResult:
    """Send the trickle until the SLOs of ``spec`` held for ``gate.hold_s`` (a window with at
    least one request, all answered within the load's time-out); PlatformError with the
    last reason when ``deadline`` (monotonic) passes first."""
    load = spec.load
    started = time.monotonic()
    period = 1.0 / gate.trickle_rps
    timeout = min(float(load.request_timeout_s), max(1.0, gate.timeout_s))
    seen: deque[tuple[float, bool, float]] = deque()  # (monotonic end, ok, latency ms)
    sent = 0
    last = "no answer yet"
    headers = connection_headers(load, os.environ)
    with httpx.Client(
        base_url=endpoint, headers=headers, verify=tls_verify(load), timeout=timeout
    ) as client:
        request: _Request | None = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise PlatformError(
                    f"the SLOs did not hold for {gate.hold_s:g} s under a trickle of "
                    f"{gate.trickle_rps:g} req/s within the health gate's time-out ({last})"
                )
            t0 = time.perf_counter()
            try:
                if request is None:
                    request = _Request(client, spec)
                ok = request.send(client)
                if not ok:
                    last = f"{request.method} {request.path} answered non-200"
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                ok, last = False, f"{type(exc).__name__}: {exc}"[:160]
            sent += 1
            end = time.monotonic()
            seen.append((end, ok, (time.perf_counter() - t0) * 1000.0))
            while seen and seen[0][0] < end - gate.hold_s:
                seen.popleft()
            # judged once the trickle has run hold_s: the window is then a full one
            if end - started >= gate.hold_s:
                why = _holds(list(seen), spec)
                if why is None:
                    latencies = [ms for _, _, ms in seen]
                    return GateResult(
                        end - started, sent, len(seen),
                        round(_percentile(latencies, 0.5), 1),
                        round(_percentile(latencies, 0.99), 1),
                    )  # fmt: skip
                last = why
                log.debug("health gate: not yet: %s", why)
            time.sleep(max(0.0, period - (time.monotonic() - now)))


def describe(result: GateResult) -> dict[str, Any]:
    return {
        "gate_s": round(result.seconds, 3),
        "requests": result.requests,
        "window_requests": result.window_requests,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
    }
