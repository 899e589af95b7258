"""The supervisor's probes of a replica (like a kubelet's readiness and liveness probes).

Readiness (``GET /health/ready``) decides whether the router sends a replica traffic;
liveness (``GET /health/live``, optional, see :class:`Liveness`) decides whether a replica
that was Ready once is hung and must be killed. Both are one plain HTTP request on loopback
with a short timeout: a probe that cannot connect, times out or gets anything but 200 fails.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass

READY_PATH = "/health/ready"
LIVE_PATH = "/health/live"
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Liveness:
    """Liveness probe settings (like a kubelet's livenessProbe)."""

    period_s: float
    timeout_s: float
    failure_threshold: int


def probe_ready(port: int, timeout: float = PROBE_TIMEOUT_S, path: str = READY_PATH) -> bool:
    """True when the replica on ``port`` answers ``GET path`` (readiness) with 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
