"""The detached reverter: ``python -m harness.faults.reverter STATE_FILE``.

Started (in its own session, without a death signal) for every injected fault. It exits as
soon as the state file is gone (the harness reverted the fault). When the harness that owns
the fault dies, even by SIGKILL, or the fault's time-to-live runs out, it reverts the fault
itself and removes the file. It imports only the standard library, psutil and this package.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from harness.faults.state import FaultRecord, revert_record

log = logging.getLogger("harness.faults.reverter")

POLL_S = 0.2


def watch(path: Path, poll_s: float = POLL_S) -> str:
    """Watch one state file until it is gone or reverted; returns what happened."""
    try:
        record = FaultRecord.load(path)
    except FileNotFoundError:
        return "gone"
    while True:
        if not path.exists():
            return "reverted by the harness"
        why = None
        if not record.owner_alive():
            why = f"owner pid {record.owner_pid} died"
        elif record.expired():
            why = "time-to-live expired"
        if why is not None:
            if not path.exists():  # the harness reverted it meanwhile
                return "reverted by the harness"
            pids = revert_record(record)
            log.warning("reverted %s (%s): pids %s", record.id, why, pids)
            return why
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.faults.reverter STATE_FILE", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s reverter %(message)s")
    watch(Path(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
