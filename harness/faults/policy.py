"""The numbers every fault shares: how long its effect may take to show, and its time-to-live.

Why one module: these were spelled in three files (3, 5 and 15 s to prove an effect) and
drifted. Now a local process has :data:`PROOF_TIMEOUT_S` ``["local"]`` to show a fault took
hold (it reacts in milliseconds; 5 s covers a loaded 2-core machine), a cluster
``["kubernetes"]`` (the API server, the kubelet and controllers react in seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

#: Where a fault runs: the ``platform.kind`` it needs ("local", "kubernetes", or the kind of
#: a platform added later).
PlatformKind = str

#: Seconds a fault's effect may take to show before the run fails with "fault had no effect"
#: (a platform kind not listed gets the local figure: see :func:`proof_timeout_s`).
PROOF_TIMEOUT_S: dict[PlatformKind, float] = {"local": 5.0, "kubernetes": 15.0}
#: A held fault's time-to-live is its duration plus this (a hold never overruns that much).
TTL_MARGIN_S = 60.0
#: Time-to-live of a fault left in place (``duration_s: 0``) when none is given.
OPEN_TTL_S = 600.0

T = TypeVar("T")


def proof_timeout_s(platform: PlatformKind) -> float:
    """The proof time-out of a fault on ``platform``."""
    return PROOF_TIMEOUT_S.get(platform, PROOF_TIMEOUT_S["local"])


def ttl_for(duration_s: float, ttl_s: float | None) -> float:
    """The time-to-live of a fault held ``duration_s`` (0: until reverted)."""
    if ttl_s is not None:
        return ttl_s
    return duration_s + TTL_MARGIN_S if duration_s > 0 else OPEN_TTL_S


def poll(check: Callable[[], T | None], timeout_s: float, first_s: float = 0.002) -> T | None:
    """Call ``check`` until it returns something other than None or ``timeout_s`` passed
    (then the last answer, None). Waits start at ``first_s`` and double up to 0.2 s, so a
    fast effect is seen within milliseconds and a slow one costs few calls."""
    deadline = time.monotonic() + timeout_s
    wait = first_s
    while True:
        found = check()
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        wait = min(wait * 2, 0.2)


def hold(seconds: float, done: Callable[[], bool] | None = None) -> None:
    """Sleep ``seconds`` in short steps (Ctrl-C and abort guards interrupt it); stop early
    when ``done()`` says the fault was reverted from elsewhere."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if done is not None and done():
            return
        time.sleep(min(0.1, left))
