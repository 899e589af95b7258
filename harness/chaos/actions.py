"""Chaos Toolkit actions for the ``local`` platform: its faults and their revert actions.

The fault functions (``lose_node``, ``crash_replica``, ``hang_replica``,
``exhaust_gpu_memory``, ``contend_compute``) and their revert actions (``restore_node``,
``resume_replica``, ``release_gpu_memory``, ``stop_contention``) are generated from the
fault registry (:mod:`harness.chaos.adapter`); what each does, proves and takes is in its
module under :mod:`harness.faults.builtin`. Every fault injects, proves that it took hold
(else "fault had no effect: ..." naming what was checked), writes a ``fault_effect`` event
with its injection latency, holds for ``duration_s`` and reverts, also when interrupted;
``duration_s: 0`` leaves a hang, memory or contention fault in place until its revert
action, the end of the run, or its time-to-live: that is how faults overlap in a cascade.

Defined here by hand: :func:`warm_fault_workers`, a preparation, not a fault.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from pydantic import Field

from harness.chaos.adapter import export
from harness.chaos.context import current
from harness.errors import ChaosError
from harness.faults import injectors, lifecycle
from harness.faults.builtin.contention import worker_count
from harness.faults.hosts import LocalHost
from harness.rundir import RunDir

log = logging.getLogger(__name__)

__all__ = [*export(globals(), __name__), "warm_fault_workers", "revert_everything"]


def warm_fault_workers(
    node: Annotated[str, Field(min_length=1)],
    workers: Annotated[int, Field(ge=1, le=64)] | None = None,
    ttl_s: Annotated[float, Field(gt=0, le=7 * 24 * 3600)] = 900.0,
) -> dict[str, Any]:
    """Start and warm the fault workers of ``node`` before the fault (CUDA: torch
    imported and the context created, ~5 s) so the fault itself takes milliseconds. Not
    a fault: the workers idle until a memory or contention fault uses them. They exit with
    the harness, or after ``ttl_s``."""
    ctx = current()
    platform: LocalHost = ctx.platform  # type: ignore[assignment]
    if getattr(platform, "kind", None) != "local":
        raise ChaosError("warm_fault_workers needs the local platform (platform.kind: local)")
    device = platform.node_device(node)
    cpus = platform.node_cpus(node)
    count = worker_count(platform, node, workers)
    t0 = time.perf_counter()
    pool = injectors.warm_workers(node, device, cpus, count, ttl_s, RunDir(ctx.run_dir).worker_log)
    took = time.perf_counter() - t0
    log.info("%d fault worker(s) warm on %s (%s) in %.2f s", len(pool), node, device, took)
    return {"node": node, "device": device, "pids": [w.pid for w in pool], "warm_s": took}


def revert_everything() -> int:
    """Revert every fault still held and end the warm workers (the runner's last word);
    returns how many faults were still in place."""
    return lifecycle.revert_everything()
