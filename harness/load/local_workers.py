"""Load beyond one process: a Locust master and N worker processes on this machine.

``load.workers: N`` (N >= 1, ``workers_on: local``) runs the load as a Locust master that
owns the shape and N workers that run the users, as explicit ``--master`` and ``--worker``
subprocesses rather than ``--processes``, so that each worker is started with its own
index and records file (the contract is in :mod:`harness.load.workerenv`).
:class:`LocalWorkers` is the master's crew for :class:`~harness.load.local.LocustRunner`;
their records are merged by :mod:`harness.load.merge`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness.config import LoadSpec
from harness.errors import LoadError
from harness.load.local import (
    LOCUSTFILE,
    LocustRunner,
    kill_group,
    locust_env,
    locust_stop_timeout,
    send_signal,
)
from harness.load.merge import LiveMerger, count_records, merge_records
from harness.load.workerenv import (
    RECORDS_ENV,
    WORKER_ENV,
    WORKERS_ENV,
    worker_record_files,
    worker_records_path,
)
from harness.procs import die_with_parent
from harness.rundir import RunDir
from harness.timeline import Timeline

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalWorkers:
    """``count`` Locust worker processes beside a master on 127.0.0.1, each with its own
    records file, appended live to ``requests.csv`` and merged sorted at the end. Every
    process dies with the harness (parent-death signal). A :class:`~harness.load.local.Crew`.
    """

    #: How long the workers get to exit by themselves once the master has quit.
    worker_exit_s = 5.0

    def __init__(
        self, count: int, run_dir: Path, *, stop_timeout_s: int, expect_workers_s: float
    ) -> None:
        self.count = count
        self.run_dir = run_dir
        self.stop_timeout_s = stop_timeout_s
        self.expect_workers_s = expect_workers_s
        self.port = _free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self._merger: LiveMerger | None = None

    def command(self, locust: list[str]) -> list[str]:
        # the master sends no request: its records file is /dev/null (env execs, same pid)
        return [
            "env",
            f"{RECORDS_ENV}={os.devnull}",
            *locust,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(self.port),
            "--expect-workers",
            str(self.count),
            "--expect-workers-max-wait",
            f"{self.expect_workers_s:g}",
        ]

    def worker_command(self, index: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(self.port),
            "--stop-timeout",
            str(self.stop_timeout_s),
            "--loglevel",
            "WARNING",
            "--logfile",
            str(RunDir(self.run_dir).locust_worker_log(index)),
        ]

    def start(self) -> None:
        """Start the workers (the master is launched; the load's t0 is the master's, which
        it writes once all workers are connected and they read when their users start) and
        the live merge of their records."""
        env = locust_env(self.run_dir)
        env[WORKERS_ENV] = str(self.count)
        parent = os.getpid()
        for index in range(self.count):
            worker_env = {
                **env,
                WORKER_ENV: str(index),
                RECORDS_ENV: str(worker_records_path(self.run_dir, index)),
            }
            try:
                proc = subprocess.Popen(
                    self.worker_command(index),
                    cwd=self.run_dir,
                    env=worker_env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_parent(parent),
                )
            except OSError as exc:
                raise LoadError(f"could not start Locust worker {index}: {exc}") from exc
            self.procs.append(proc)
        log.info(
            "%d Locust workers started (pids %s), master on 127.0.0.1:%d",
            self.count,
            [p.pid for p in self.procs],
            self.port,
        )
        self._merger = LiveMerger(self.run_dir)
        self._merger.start()

    def pids(self) -> dict[str, int]:
        """The running workers by telemetry source name, ``locust-worker-<index>`` (the index
        of their log file)."""
        return {f"locust-worker-{i}": p.pid for i, p in enumerate(self.procs) if p.poll() is None}

    def record_count(self) -> int:
        return sum(count_records(p) for p in worker_record_files(self.run_dir))

    def collect(self) -> None:
        """Stop the workers (they quit with the master; SIGINT, then SIGKILL, if not) and
        merge their records into ``requests.csv``."""
        deadline = time.monotonic() + self.worker_exit_s
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
        late = [p for p in self.procs if p.poll() is None]
        for proc in late:
            log.warning("Locust worker pid %d still runs after the master: SIGINT", proc.pid)
            send_signal(proc, signal.SIGINT)
        deadline = time.monotonic() + self.stop_timeout_s + 3.0
        for proc in late:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("Locust worker pid %d did not stop: SIGKILL", proc.pid)
        for proc in self.procs:
            kill_group(proc)
            proc.wait()
        if self._merger is not None:
            self._merger.halt()
        merge_records(self.run_dir, worker_record_files(self.run_dir))


class DistributedLocustRunner(LocustRunner):
    """A Locust master (the shape, Locust's statistics) and ``spec.workers`` local worker
    processes (:class:`LocalWorkers`: the users, each with its own records file); a
    :class:`~harness.load.local.LocustRunner` whose crew are the workers."""

    def __init__(
        self,
        spec: LoadSpec,
        endpoint: str,
        run_dir: Path,
        timeline: Timeline,
        *,
        first_record_timeout_s: float = 15.0,
        stop_timeout_s: float | None = None,
    ) -> None:
        if spec.workers < 1:
            raise LoadError("DistributedLocustRunner needs load.workers >= 1")
        self.workers = spec.workers
        self.local_workers = LocalWorkers(
            spec.workers,
            Path(run_dir).resolve(),
            stop_timeout_s=locust_stop_timeout(spec, stop_timeout_s),
            expect_workers_s=first_record_timeout_s,
        )
        super().__init__(
            spec,
            endpoint,
            run_dir,
            timeline,
            first_record_timeout_s=first_record_timeout_s,
            stop_timeout_s=stop_timeout_s,
            crew=self.local_workers,
        )

    @property
    def port(self) -> int:
        """The master's port on 127.0.0.1."""
        return self.local_workers.port

    @property
    def worker_procs(self) -> list[subprocess.Popen[bytes]]:
        return self.local_workers.procs
