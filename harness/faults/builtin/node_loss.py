"""GPU node loss on the local platform: every replica on a node is killed at once and the
node stays down; its replicas are rescheduled onto nodes with room, else they wait for it.

What it teaches: whether the survivors absorb the load while capacity is gone, and how long
capacity takes to come back. No state file: the replicas are the harness's children, so a
node cannot stay down longer than the harness lives.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.errors import FaultNoEffect
from harness.faults.active import in_process
from harness.faults.builtin._common import alive
from harness.faults.contract import Fault, FaultArgs, FaultContext, Injection, duration_field
from harness.faults.hosts import LocalHost
from harness.faults.lifecycle import release
from harness.faults.registry import register


class LoseNodeArgs(FaultArgs):
    node: str = Field(description="The node to lose (a name from platform.nodes).")
    duration_s: float = duration_field(30.0)


@register
class LoseNode(Fault[LoseNodeArgs]):
    name = "lose_node"
    platform = "local"
    args = LoseNodeArgs
    target_arg = "node"
    revert_action = "restore_node"
    hold = "timed"
    aliases = {"down_for_s": "duration_s"}
    summary = "GPU node loss: every replica on the node killed at once, the node kept down"
    proves = "every replica pid of the node is gone"

    def inject(self, ctx: FaultContext, args: LoseNodeArgs, target: str) -> Injection:
        host: LocalHost = ctx.platform
        pids = host.node_down(target)
        active = in_process(self.name, target, lambda: host.node_up(target))
        if not pids:
            active.revert()
            raise FaultNoEffect(f"lose_node {target}", "the node had no running replica to kill")
        return Injection(target, active, {"killed_pids": pids})

    def prove(
        self, ctx: FaultContext, args: LoseNodeArgs, injection: Injection
    ) -> dict[str, Any] | None:
        pids = injection.facts["killed_pids"]
        if any(alive(p) for p in pids):
            return None
        return {"killed_pids": pids, "checked": "pids gone"}

    def finish(self, ctx: FaultContext, args: LoseNodeArgs, injection: Injection) -> dict[str, Any]:
        return {"down_for_s": args.duration_s}

    def on_revert_action(self, ctx: FaultContext, target: str | None) -> dict[str, Any]:
        """End the hold, and bring the node back even when no hold is running (a no-op
        when it is up)."""
        release(self.name, target)
        host: LocalHost = ctx.platform
        if target is not None:
            host.node_up(target)
        return {"node": target}
