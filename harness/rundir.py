"""The run folder, ``results/<UTC time>-<experiment>/``, and the name of everything in it.

Why: the run folder is the contract between the runner, the load generator, the faults,
the scorer and the reports (``gpuchaos score`` and ``gpuchaos report`` read it offline), so
each of its file names is spelled here and nowhere else. Code that writes or reads a run
folder asks a :class:`RunDir` for the path (``RunDir(path).requests``) or imports a name
from here. This module is in the bottom layer: it imports nothing from the harness but
:mod:`harness.errors` (the Locust process imports it too, so it must stay that light).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from harness.errors import ConfigError

#: The experiment as resolved (variables substituted).
EXPERIMENT_FILE = "experiment.yaml"
#: Chaos Toolkit's journal.
JOURNAL_FILE = "journal.json"
#: One row per request (all workers' rows merged when the load is distributed).
REQUESTS_FILE = "requests.csv"
#: One distributed Locust worker's own request rows, by worker index.
_WORKER_REQUESTS = "requests.worker-{}.csv"
WORKER_REQUESTS_GLOB = _WORKER_REQUESTS.format("*")
WORKER_REQUESTS_RE = re.compile(r"^requests\.worker-(\d+)\.csv$")
#: One timeline event per line.
TIMELINE_FILE = "timeline.jsonl"
#: Telemetry samples (time, source, metric, value).
TELEMETRY_FILE = "telemetry.csv"
SCORECARD_FILE = "scorecard.json"
#: The scorer's per-second figures.
SLIS_FILE = "slis.csv"
REPORT_FILE = "report.html"
JUNIT_FILE = "junit.xml"
SUMMARY_FILE = "summary.md"
#: The harness's own log.
LOG_FILE = "harness.log"
#: The load's settings, read by every Locust process.
LOAD_CONFIG_FILE = "load.json"
#: The load's start (t0), written by the Locust process that owns the shape once it is ready.
LOAD_T0_FILE = "load_t0.json"
LOCUST_LOG_FILE = "locust.log"
_LOCUST_WORKER_LOG = "locust.worker-{}.log"
#: Prefix of Locust's own summary CSVs (``locust_stats.csv``, ``locust_failures.csv``, ...).
LOCUST_CSV_PREFIX = "locust"
#: Kubernetes events watched during the run.
K8S_EVENTS_FILE = "k8s_events.jsonl"
#: A Kubernetes node as it was before a fault changed it, to put it back.
_NODE_MANIFEST = "node-{}.json"
#: The folder of process logs: fault workers, the reverter, local replicas.
LOGS_DIR = "logs"
WORKER_LOG = "worker.log"
REVERTER_LOG = "reverter.log"
_REPLICA_LOG = "{}.log"
#: The folder of a tenancy run's tenants, one sub-folder each (``tenants/<name>/``): the
#: tenant's requests.csv, locust.log and derived experiment.yaml.
TENANTS_DIR = "tenants"


def replica_log_name(replica_id: str) -> str:
    """The name of a replica's log file inside :data:`LOGS_DIR`."""
    return _REPLICA_LOG.format(replica_id)


class RunDir:
    """The paths of one run folder (nothing is created or read here)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def experiment(self) -> Path:
        return self.path / EXPERIMENT_FILE

    @property
    def journal(self) -> Path:
        return self.path / JOURNAL_FILE

    @property
    def requests(self) -> Path:
        return self.path / REQUESTS_FILE

    def worker_requests(self, index: int) -> Path:
        """Distributed load: worker ``index``'s own request rows."""
        return self.path / _WORKER_REQUESTS.format(index)

    @property
    def timeline(self) -> Path:
        return self.path / TIMELINE_FILE

    @property
    def telemetry(self) -> Path:
        return self.path / TELEMETRY_FILE

    @property
    def scorecard(self) -> Path:
        return self.path / SCORECARD_FILE

    @property
    def slis(self) -> Path:
        return self.path / SLIS_FILE

    @property
    def report(self) -> Path:
        return self.path / REPORT_FILE

    @property
    def junit(self) -> Path:
        return self.path / JUNIT_FILE

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def harness_log(self) -> Path:
        return self.path / LOG_FILE

    @property
    def load_config(self) -> Path:
        return self.path / LOAD_CONFIG_FILE

    @property
    def load_t0(self) -> Path:
        return self.path / LOAD_T0_FILE

    @property
    def locust_log(self) -> Path:
        return self.path / LOCUST_LOG_FILE

    def locust_worker_log(self, index: int) -> Path:
        """Distributed load: worker ``index``'s Locust log."""
        return self.path / _LOCUST_WORKER_LOG.format(index)

    @property
    def locust_csv_prefix(self) -> Path:
        """What Locust's ``--csv`` takes: its summary files start with this path."""
        return self.path / LOCUST_CSV_PREFIX

    @property
    def k8s_events(self) -> Path:
        return self.path / K8S_EVENTS_FILE

    def node_manifest(self, node: str) -> Path:
        """A Kubernetes node saved before a fault changed it."""
        return self.path / _NODE_MANIFEST.format(node)

    @property
    def logs(self) -> Path:
        return self.path / LOGS_DIR

    @property
    def worker_log(self) -> Path:
        """The log of fault worker processes (memory hogs, compute burners)."""
        return self.logs / WORKER_LOG

    @property
    def reverter_log(self) -> Path:
        return self.logs / REVERTER_LOG

    def replica_log(self, replica_id: str) -> Path:
        return self.logs / replica_log_name(replica_id)

    def tenant(self, name: str) -> RunDir:
        """The folder of tenant ``name`` of a tenancy run (the same files as a run's)."""
        return RunDir(self.path / TENANTS_DIR / name)


def new_run_dir(experiment_name: str, out: str | Path | None, root: Path = Path("results")) -> Path:
    """Create the run folder: ``out`` when given (must be absent or empty), else a fresh
    ``root/<UTC time>-<name>``."""
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError("--out", str(path), "expected a new or empty folder")
    else:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = root / f"{stamp}-{experiment_name}"
        n = 1
        while path.exists():
            n += 1
            path = root / f"{stamp}-{experiment_name}-{n}"
    path.mkdir(parents=True, exist_ok=True)
    RunDir(path).logs.mkdir(exist_ok=True)
    return path.resolve()
