"""Chaos Toolkit actions: the faults.

Each fault injects, proves that it took hold (else ``FaultNoEffect``: "fault had no
effect"), holds, and reverts. A revert action is listed for the experiment's rollbacks so
that an interrupted method never leaves a fault behind.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psutil

from harness.chaos.context import current
from harness.errors import FaultNoEffect

log = logging.getLogger(__name__)

#: Actions that inject a fault, and the argument naming the fault's target.
FAULT_ACTIONS: dict[str, str] = {"lose_node": "node"}
#: Actions that revert a fault, and the argument naming the target they revert.
REVERT_ACTIONS: dict[str, str] = {"restore_node": "node"}

_PROOF_TIMEOUT_S = 5.0


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def lose_node(node: str, down_for_s: float = 30.0) -> dict[str, Any]:
    """GPU node loss: kill every replica on ``node`` at once and keep the node down.

    Blocks for ``down_for_s`` seconds, then brings the node back (its replicas restart);
    when interrupted, the ``restore_node`` rollback brings it back instead.
    """
    ctx = current()
    started = time.time()
    pids = ctx.platform.node_down(node)
    if not pids:
        raise FaultNoEffect(f"lose_node {node}", "the node had no running replica to kill")
    deadline = time.monotonic() + _PROOF_TIMEOUT_S
    survivors = [p for p in pids if _alive(p)]
    while survivors and time.monotonic() < deadline:
        time.sleep(0.05)
        survivors = [p for p in survivors if _alive(p)]
    if survivors:
        raise FaultNoEffect(f"lose_node {node}", f"pids still alive after kill: {survivors}")
    log.info("node %s down: killed pids %s; down for %.1f s", node, pids, down_for_s)
    time.sleep(max(0.0, started + down_for_s - time.time()))
    ctx.platform.node_up(node)
    return {"node": node, "killed_pids": pids, "down_for_s": down_for_s}


def restore_node(node: str) -> dict[str, Any]:
    """Revert node loss: bring ``node`` back (a no-op when it is up)."""
    ctx = current()
    ctx.platform.node_up(node)
    return {"node": node}
