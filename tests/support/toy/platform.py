"""The toy platform (``kind: toy``): its "replicas" are plain sleeping processes.

What adding a platform takes, minus the config block: a class with the members of
:class:`harness.platforms.base.Platform` (and whatever its faults' host protocol needs),
registered under its kind with :func:`harness.platforms.registry.register_platform`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.platforms.base import ReplicaInfo
from harness.platforms.registry import register_platform
from harness.timeline import Timeline


class ToyPlatform:
    """``replicas`` sleeping processes on one node, ``toy-node``."""

    kind = "toy"

    def __init__(self, replicas: int, timeline: Timeline) -> None:
        self.count = replicas
        self.timeline = timeline
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def endpoint(self) -> str:
        return "http://127.0.0.1:9"  # nothing serves: the toy takes no load

    def start(self) -> None:
        for i in range(self.count):
            rid = f"toy-{i}"
            cmd = [sys.executable, "-c", "import time; time.sleep(120)"]
            self.procs[rid] = subprocess.Popen(cmd)
            self.timeline.emit("replica_ready", rid, {"pid": self.procs[rid].pid})

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()

    def nodes(self) -> list[str]:
        return ["toy-node"]

    def replicas(self) -> list[ReplicaInfo]:
        return [
            ReplicaInfo(rid, "toy-node", p.pid, None, "ready", 0, "cpu")
            for rid, p in self.procs.items()
        ]

    def node_down(self, node: str) -> list[int]:
        return []

    def node_up(self, node: str) -> None:
        return None

    def replica_pid(self, replica: str) -> int:
        """What the toy fault needs of its host (its protocol, in toy/fault.py)."""
        return self.procs[replica].pid


@register_platform("toy")
def make_toy(spec: Any, timeline: Timeline, run_dir: Path, kube_context: str | None) -> ToyPlatform:
    return ToyPlatform(int(spec.platform.replicas), timeline)


def toy_spec(replicas: int) -> Any:
    """Stands in for a ``HarnessSpec`` whose ``platform`` block is ``{kind: toy, replicas:
    N}`` (a real platform adds its block to the config union instead)."""
    return SimpleNamespace(platform=SimpleNamespace(kind="toy", replicas=replicas))
