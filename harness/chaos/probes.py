"""Chaos Toolkit probes: is the service meeting its SLOs right now?"""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated, Any

from pydantic import Field

from harness.chaos.context import current

#: A window of the last seconds of requests: more than nothing, at most an hour.
WindowS = Annotated[float, Field(gt=0, le=3600)]

log = logging.getLogger(__name__)


def slo_window(window_s: WindowS = 5.0) -> dict[str, Any]:
    """SLIs over the last ``window_s`` seconds of requests, and whether each SLO holds."""
    from harness.scoring.slis import overall

    ctx = current()
    now = time.time()
    recent = ctx.recent_requests(ctx.requests_path).window(now, window_s)
    timeout_ms = ctx.spec.load.request_timeout_s * 1000.0
    figures = overall(recent, timeout_ms=timeout_ms)
    slos = ctx.spec.slos
    checks: dict[str, bool] = {}
    if int(figures.get("requests") or 0) == 0:
        checks["requests"] = False
    for name, key in (
        ("error_rate", "error_rate"),
        ("p50_latency_ms", "p50_latency_ms"),
        ("p99_latency_ms", "p99_latency_ms"),
        ("ttft_p95_ms", "ttft_p95_ms"),
    ):
        objective = getattr(slos, name)
        measured = figures.get(key)
        if objective is not None:
            checks[name] = (
                measured is not None and not math.isnan(measured) and (measured <= objective)
            )
    result = {"window_s": window_s, "figures": figures, "checks": checks}
    log.info("SLO window %.0fs: %s", window_s, checks)
    return result


def slos_hold(window_s: WindowS = 5.0) -> bool:
    """True when every latency and error SLO held over the last ``window_s`` seconds."""
    checks = slo_window(window_s)["checks"]
    return bool(checks) and all(checks.values())


def ready_replicas() -> int:
    """How many replicas are Ready now."""
    return sum(1 for r in current().platform.replicas() if r.state == "ready")
