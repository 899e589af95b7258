"""The Locust process's settings: the load config, read once as the locustfile is imported.

Imported only inside the Locust process (by the locustfile and the modules it imports):
it reads the JSON file named by ``GPUCHAOS_LOAD_CONFIG``, which the harness's runners
write, and raises without it. The values the recording users read per request are module
constants here, resolved once, so the hot path reads plain globals; what depends on the
protocol of ``load.user`` is its class's (:mod:`harness.load.protocols`). The load's t0 is
the exception: the process that owns the shape picks it when it is ready (:class:`LoadStart`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import gevent

from harness.load.loadconfig import CONFIG_ENV, read_load_config, read_t0, write_t0
from harness.load.sampling import PromptSource, longest
from harness.load.shapes import PhaseClock
from harness.load.workerenv import RECORDS_ENV, worker_slot

WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "gpu", "memory", "tensor",
    "kernel", "batch", "token", "stream", "latency", "replica", "node", "cluster", "spike",
    "traffic", "model", "layer", "weight", "cache", "queue", "decode", "prefill", "request",
    "server", "client", "chaos", "load", "test", "recover", "fault", "budget", "error",
    "signal", "window", "sample", "metric", "graph", "shard", "pool",
)  # fmt: skip

_config_path = os.environ.get(CONFIG_ENV)
if not _config_path:
    raise RuntimeError(f"{CONFIG_ENV} is not set: this locustfile is started by the harness")
CONFIG = read_load_config(_config_path)
LOAD = CONFIG.load
SHAPE = LOAD.shape
PHASES = PhaseClock(SHAPE)
#: A worker of a distributed load writes its own records file (see harness.load.workerenv).
RECORDS_PATH = os.environ.get(RECORDS_ENV) or CONFIG.records_path
#: This process's index among the workers, and their number; (0, 1) when alone.
WORKER, WORKERS = worker_slot()
PROMPTS = PromptSource(WORDS, LOAD.seed, longest(LOAD.prompt_words), WORKER, WORKERS)


class LoadStart:
    """The load's t0 (unix seconds, offset 0 of the shape) in this Locust process.

    Either fixed in ``load.json`` (the Kubernetes Jobs runner), or picked by the process
    that owns the shape (the only process, or the master) when it is ready, that is when
    its first shape tick comes, once Locust is imported and its workers are connected, so
    Locust's start-up never eats the schedule. It writes it to ``t0_path``, where the
    runner waits for it and where a worker reads it when its first user starts.
    """

    #: The owner's t0 is this long after its ready time (the users spawn meanwhile).
    MARGIN_S = 0.5
    #: How long a worker waits for the master's t0 file.
    WAIT_S = 30.0

    def __init__(self, fixed: float | None, path: Path | None) -> None:
        self._t0 = fixed
        self._path = path

    def pick(self) -> float:
        """The shape owner's t0: the one given, else now plus a margin (written out)."""
        if self._t0 is None:
            assert self._path is not None  # checked by write_load_config
            self._t0 = time.time() + self.MARGIN_S
            write_t0(self._path, self._t0)
        return self._t0

    def known(self) -> float | None:
        """t0 if it is set or written already, else ``None`` (never waits)."""
        if self._t0 is None and self._path is not None:
            self._t0 = read_t0(self._path)
        return self._t0

    def get(self) -> float:
        """t0, waiting for the owner's file if need be (a worker's first user)."""
        deadline = time.monotonic() + self.WAIT_S
        while (t0 := self.known()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no load t0 in {self._path} after {self.WAIT_S:g} s")
            gevent.sleep(0.05)
        return t0


#: This process's view of the load's t0.
START = LoadStart(CONFIG.t0, CONFIG.t0_path)
