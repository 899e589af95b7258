"""The contract between the harness and each Locust worker: environment and file names.

A distributed load runs N Locust workers. Each learns from its environment which of them
it is (``GPUCHAOS_LOAD_WORKER`` of ``GPUCHAOS_LOAD_WORKERS``) and where its records go
(``GPUCHAOS_LOAD_RECORDS``, which overrides the records path of the load config), and
writes ``requests.worker-<n>.csv``. Open loop: every worker draws the same arrival
schedule and sends every N-th arrival, so together they send exactly the single-process
schedule.

Both sides import this module, the locustfile inside Locust and the runners in the
harness, so it imports nothing but the standard library and :mod:`harness.rundir`
(where the file names are spelled).
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.rundir import WORKER_REQUESTS_GLOB, WORKER_REQUESTS_RE, RunDir

#: Overrides the records file of one Locust process (a worker's own file).
RECORDS_ENV = "GPUCHAOS_LOAD_RECORDS"
#: This worker's index (0-based) and the number of workers.
WORKER_ENV = "GPUCHAOS_LOAD_WORKER"
WORKERS_ENV = "GPUCHAOS_LOAD_WORKERS"


def worker_slot() -> tuple[int, int]:
    """(index, count) of this Locust process among the workers; (0, 1) when alone."""
    count = int(os.environ.get(WORKERS_ENV) or 1)
    index = int(os.environ.get(WORKER_ENV) or 0)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"{WORKER_ENV}={index} is not below {WORKERS_ENV}={count}")
    return index, count


def worker_records_path(run_dir: Path, index: int) -> Path:
    return RunDir(run_dir).worker_requests(index)


def worker_record_files(run_dir: Path) -> list[Path]:
    """The workers' records files in ``run_dir``, by worker index."""
    found = []
    for path in Path(run_dir).glob(WORKER_REQUESTS_GLOB):
        match = WORKER_REQUESTS_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]
