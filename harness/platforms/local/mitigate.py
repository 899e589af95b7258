"""What on-call does to the local platform by hand during an incident: restart a replica,
move the replicas off a node, set how many replicas a node runs.

Why here and not in the drill: these are platform operations (what ``kubectl delete pod``,
``kubectl drain`` and ``kubectl scale`` are to a cluster), built only from the platform's
public methods (``kill_replica``, ``cordon``, ``add_replica``, ``remove_replica``), so any
caller, a drill's trainee or a test, gets the same behaviour and the same timeline events.
Each returns what it did as a plain dict, for the caller to show.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Any

from harness.errors import PlatformError

if TYPE_CHECKING:
    from harness.platforms.local.platform import LocalPlatform

log = logging.getLogger(__name__)


def restart_replica(platform: LocalPlatform, replica_id: str) -> dict[str, Any]:
    """Kill a replica's process (SIGKILL, which also ends a stopped one); the supervisor
    starts a fresh one on the same node, as a deleted pod is recreated."""
    node = platform.replica_node(replica_id)
    pid = platform.kill_replica(replica_id, signal.SIGKILL)
    log.info("restarted replica %s on %s (killed pid %d)", replica_id, node, pid)
    return {"replica": replica_id, "node": node, "killed_pid": pid}


def _on_node(platform: LocalPlatform, node: str) -> list[str]:
    """The replicas placed on ``node`` (running, starting or waiting), in id order."""
    return sorted(r.id for r in platform.replicas() if r.node == node)


def drain_node(platform: LocalPlatform, node: str) -> dict[str, Any]:
    """Cordon ``node``, then move each of its replicas to the up node with the most room:
    the new replica is added first and the old one removed after, so capacity never dips
    below what it was by more than one starting replica. A replica that finds no room
    stays where it is (reported in ``stayed``)."""
    platform.cordon(node, True)
    moved: dict[str, str] = {}
    stayed: list[str] = []
    for rid in _on_node(platform, node):
        room = {n: r for n, r in platform.node_room().items() if n != node and r > 0}
        if not room:
            stayed.append(rid)
            continue
        to = max(room, key=lambda n: room[n])
        new = platform.add_replica(to)
        if new is None:
            stayed.append(rid)
            continue
        platform.remove_replica(rid)
        moved[rid] = new
    log.info("drained %s: moved %s, stayed %s", node, moved, stayed)
    return {"node": node, "cordoned": True, "moved": moved, "stayed": stayed}


def scale_node(platform: LocalPlatform, node: str, count: int) -> dict[str, Any]:
    """Run ``count`` replicas on ``node``: add replicas while it has room, or remove the
    newest ones (highest index first). Returns the replicas added and removed and the
    count reached (below ``count`` when the node has no more room)."""
    if count < 0:
        raise PlatformError(f"cannot scale {node} to {count} replicas")
    here = _on_node(platform, node)
    added: list[str] = []
    removed: list[str] = []
    while len(here) + len(added) < count:
        new = platform.add_replica(node)
        if new is None:
            break
        added.append(new)
    surplus = len(here) - count
    if surplus > 0:
        newest = sorted(here, key=lambda rid: (len(rid), rid), reverse=True)[:surplus]
        for rid in newest:
            platform.remove_replica(rid)
            removed.append(rid)
    reached = len(here) + len(added) - len(removed)
    log.info("scaled %s to %d (asked %d): +%s -%s", node, reached, count, added, removed)
    return {"node": node, "asked": count, "replicas": reached, "added": added, "removed": removed}
