"""``gpuchaos cleanup``: revert what a dead run left behind.

Reads the fault state files (see :mod:`harness.faults.state`) whose owning harness is no
longer running and reverts each: stopped processes get SIGCONT, lowered address-space
limits are restored, hog and burner processes are killed. Faults of runs still in progress
are left alone unless ``include_live`` is set.
"""

from __future__ import annotations

import logging
import time

from harness.faults.state import FaultRecord, leftover_records, revert_record, state_dir

log = logging.getLogger(__name__)


def describe(record: FaultRecord) -> str:
    age = time.time() - record.created_at
    pids = ", ".join(str(t.pid) for t in record.targets) or "none"
    return (
        f"{record.fault} on {record.target} ({record.kind}; pids {pids}; "
        f"owner pid {record.owner_pid}; injected {age:.0f} s ago)"
    )


def cleanup(include_live: bool = False) -> list[tuple[FaultRecord, list[int]]]:
    """Revert every leftover fault; returns each record with the pids acted on."""
    done = []
    for record in leftover_records(include_live):
        pids = revert_record(record)
        log.info("reverted %s: acted on pids %s", describe(record), pids)
        done.append((record, pids))
    return done


def cleanup_report(include_live: bool = False) -> list[str]:
    """Lines for the terminal: what was reverted, or that nothing was left."""
    done = cleanup(include_live)
    if not done:
        return [f"nothing to clean up in {state_dir()}"]
    return [
        f"reverted {describe(record)}: "
        + (f"acted on pids {pids}" if pids else "its processes were already gone")
        for record, pids in done
    ]
