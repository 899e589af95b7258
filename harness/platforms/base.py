"""The contract every platform implements, so the same faults and scorer work on each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from harness.timeline import Timeline

ReplicaState = Literal[
    "starting", "ready", "unready", "exited", "backoff", "down", "pending"
]  # pending: wanted, no node with room yet


@dataclass(frozen=True)
class ReplicaInfo:
    """A snapshot of one replica."""

    id: str  # e.g. "node-a-0"; also the value of the x-replica-id response header
    node: str
    pid: int | None  # None while no process runs
    port: int | None
    state: ReplicaState
    restarts: int
    device: str  # "cpu" or "cuda:N"


class Platform(Protocol):
    """A place where the workload runs."""

    #: "local", "kubernetes" or "external": which registered faults it takes
    kind: str

    @property
    def endpoint(self) -> str:
        """Base URL clients send traffic to, e.g. ``http://127.0.0.1:41234``."""
        ...

    def start(self) -> None:
        """Bring the workload up and wait until every replica is Ready.

        Raises WorkloadNotReady when a replica exits early or times out.
        """
        ...

    def stop(self) -> None:
        """Tear everything down; idempotent; never leaves a process behind."""
        ...

    def attach(self, timeline: Timeline, run_dir: Path) -> None:
        """Report to ``timeline`` and keep what the platform writes per run (logs of replicas
        started from now on, cluster events) under ``run_dir``. Why: a game day deploys once
        and runs several experiments on the deployment; each run has its own timeline and
        folder, and the platform's events must land in the run they happen in."""
        ...

    def nodes(self) -> list[str]:
        """Names of the nodes."""
        ...

    def replicas(self) -> list[ReplicaInfo]:
        """Snapshot of all replicas."""
        ...

    def node_down(self, node: str) -> list[int]:
        """Kill every replica on ``node`` at once and keep the node down; returns killed pids."""
        ...

    def node_up(self, node: str) -> None:
        """Bring ``node`` back; its replicas are started again. No-op if it is up."""
        ...
