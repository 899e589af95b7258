"""An extra load in a process of its own: ``python -m harness.load.neighbour --dir DIR
--endpoint URL --spec FILE``.

Why a process: the ``spike_neighbour_load`` fault (:mod:`harness.faults.builtin.tenancy_load`)
sits below the load layer and must not import it, and its load must be killable by pid
alone (the fault's detached reverter does that when the harness dies or the time-to-live
runs out). This process runs one :class:`~harness.load.local.LocustRunner` with the load spec
in FILE (JSON) against URL, its records, ``locust.log`` and its own ``timeline.jsonl`` in
DIR (not the run's: its load_start/load_end are not the run's load), until the shape ends or
SIGINT/SIGTERM, then stops Locust (SIGINT, so it writes its summary). Locust dies with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from harness.config import LoadSpec
from harness.errors import HarnessError
from harness.load.local import LocustRunner
from harness.timeline import Timeline

log = logging.getLogger("harness.load.neighbour")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.load.neighbour")
    parser.add_argument("--dir", required=True, help="folder of its records and logs")
    parser.add_argument("--endpoint", required=True, help="base URL the requests go to")
    parser.add_argument("--spec", required=True, help="the load spec, a JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s neighbour-load %(message)s")
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = LoadSpec.model_validate(json.loads(Path(args.spec).read_text(encoding="utf-8")))
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    timeline = Timeline(out / "timeline.jsonl")
    runner = LocustRunner(spec, args.endpoint, out, timeline, first_record_timeout_s=60.0)
    try:
        runner.start()
        while not stop.is_set() and not runner.wait(0.2):
            if not runner.running:
                break
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        runner.stop(grace_s=5.0)
        timeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
