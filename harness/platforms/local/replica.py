"""The supervisor's record of one replica: where it runs, its process, its state and its
history of starts, crashes and probes.

The record is mutable and guarded by the supervisor's lock; :meth:`Replica.info` is the
immutable snapshot (:class:`~harness.platforms.base.ReplicaInfo`) everyone else sees.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from harness.platforms.base import ReplicaInfo, ReplicaState


@dataclass
class Replica:
    """Mutable record of one replica; guarded by the supervisor's lock."""

    id: str
    node: str
    device: str
    state: ReplicaState = "down"
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None
    restarts: int = 0
    crashes: int = 0  # exits the platform did not cause, over the replica's life
    consecutive_crashes: int = 0
    spawned_at: float = 0.0  # monotonic
    ready_since: float | None = None  # monotonic
    next_start_at: float | None = None  # monotonic; None when no start is scheduled
    probe_failures: int = 0
    last_returncode: int | None = None
    home: str = ""  # the node it was declared on (it may run elsewhere after a node loss)
    live_failures: int = 0
    last_live_probe: float = 0.0  # monotonic
    ever_ready: bool = False  # this process was Ready once: liveness applies from then on
    kill_reason: str | None = None  # why the supervisor killed the current process
    autoscaled: bool = False  # added by the autoscaler

    def __post_init__(self) -> None:
        if not self.home:
            self.home = self.node

    def info(self) -> ReplicaInfo:
        return ReplicaInfo(
            id=self.id,
            node=self.node,
            pid=self.proc.pid if self.proc is not None else None,
            port=self.port,
            state=self.state,
            restarts=self.restarts,
            device=self.device,
        )
