"""The Locust process's settings: the load config, read once as the locustfile is imported.

Imported only inside the Locust process (by the locustfile and the modules it imports):
it reads the JSON file named by ``GPUCHAOS_LOAD_CONFIG``, which the harness's runners
write, and raises without it. The values the recording users read per request are module
constants here, resolved once, so the hot path reads plain globals; what depends on the
protocol of ``load.user`` is its class's (:mod:`harness.load.protocols`).
"""

from __future__ import annotations

import os

from harness.load.loadconfig import CONFIG_ENV, read_load_config
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
T0 = CONFIG.t0
#: A worker of a distributed load writes its own records file (see harness.load.workerenv).
RECORDS_PATH = os.environ.get(RECORDS_ENV) or CONFIG.records_path
#: This process's index among the workers, and their number; (0, 1) when alone.
WORKER, WORKERS = worker_slot()
PROMPTS = PromptSource(WORDS, LOAD.seed, longest(LOAD.prompt_words), WORKER, WORKERS)
