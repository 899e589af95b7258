"""The toy fault ``renice_replica``: a replica's process gets the lowest CPU priority
(nice 19) for ``duration_s``, then its old priority back. One module is all a fault is.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from pydantic import Field

from harness.faults.active import in_process
from harness.faults.contract import Fault, FaultArgs, FaultContext, Injection, duration_field
from harness.faults.registry import register


class ToyHost(Protocol):
    """What the fault needs of its platform."""

    def replica_pid(self, replica: str) -> int: ...


class ReniceArgs(FaultArgs):
    replica: str = Field(description="The replica whose process is reniced.")
    duration_s: float = duration_field(10.0, "0 holds it until unrenice_replica or the end")
    nice: int = Field(19, ge=1, le=19, description="The niceness to set.")


@register
class ReniceReplica(Fault[ReniceArgs]):
    name = "renice_replica"
    platform = "toy"
    args = ReniceArgs
    target_arg = "replica"
    revert_action = "unrenice_replica"
    hold = "open"
    summary = "A replica's process at the lowest CPU priority"
    proves = "the process's niceness is the one set"

    def inject(self, ctx: FaultContext, args: ReniceArgs, target: str) -> Injection:
        host: ToyHost = ctx.platform
        pid = host.replica_pid(target)
        old = os.getpriority(os.PRIO_PROCESS, pid)
        # registered before the effect; the process dies with the harness, so no state file
        active = in_process(self.name, target, lambda: os.setpriority(os.PRIO_PROCESS, pid, old))
        os.setpriority(os.PRIO_PROCESS, pid, args.nice)
        return Injection(target, active, {"pid": pid, "old_nice": old})

    def prove(
        self, ctx: FaultContext, args: ReniceArgs, injection: Injection
    ) -> dict[str, Any] | None:
        pid = injection.facts["pid"]
        if os.getpriority(os.PRIO_PROCESS, pid) != args.nice:
            return None
        return {"nice": args.nice, "checked": "getpriority"}
