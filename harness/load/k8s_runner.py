"""Locust as Kubernetes Jobs behind the load runner interface (``workers_on: kubernetes``).

:class:`KubernetesJobsRunner` drives :class:`~harness.load.k8s_jobs.KubernetesLoadJobs`
the way the local runners drive their processes: ``start`` creates the Jobs and returns
once a worker's log holds a request record; while the load runs the worker logs are read
every ``poll_s`` and their new rows appended to ``requests.csv`` (live progress, stop
conditions, the steady-state probes); ``stop`` reads the logs a last time, merges them
sorted, and deletes the Jobs, Service and ConfigMap, also when the run was aborted.
"""

from __future__ import annotations

import csv
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import LoadSpec
from harness.errors import LoadError
from harness.load.k8s_jobs import KubernetesLoadJobs
from harness.load.lifecycle import PhaseEvents, load_start_details, scheduled_arrivals
from harness.load.merge import HEADER, count_records
from harness.rundir import REQUESTS_FILE
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.platforms.kubernetes.platform import KubernetesPlatform

log = logging.getLogger(__name__)


class KubernetesJobsRunner:
    """Locust as Kubernetes Jobs in ``platform``'s cluster, its records read from the worker
    pods' logs. The load goes to the workload's in-cluster Service URL (``endpoint``, a
    port-forward on 127.0.0.1, is not used); ``stop_timeout_s`` is not used either (the
    Jobs' Locust takes its ``--stop-timeout`` from the spec)."""

    poll_s = 2.0
    #: how long a master Job state read is reused by :attr:`running`
    state_ttl_s = 1.0

    def __init__(
        self,
        spec: LoadSpec,
        endpoint: str,
        run_dir: Path,
        timeline: Timeline,
        *,
        platform: KubernetesPlatform,
        first_record_timeout_s: float = 15.0,
        stop_timeout_s: float | None = None,
    ) -> None:
        self.spec = spec
        self.endpoint = platform.service_url.rstrip("/")
        self.run_dir = Path(run_dir).resolve()
        self.timeline = timeline
        self.first_record_timeout_s = first_record_timeout_s
        self.start_delay_s = spec.workers_start_s
        self.records_path = self.run_dir / REQUESTS_FILE
        self.jobs = KubernetesLoadJobs(
            platform, spec, self.run_dir, spec.workers_image, platform.service_url
        )
        self.returncode: int | None = None
        self._t0: float | None = None
        self._phases = PhaseEvents(spec.shape, timeline)
        self._lock = threading.Lock()
        self._exited_by_itself: bool | None = None
        self._interrupted = False  # cut short: the Jobs were deleted under it
        self._ended = False  # load_end emitted
        self._rows: dict[int, list[list[str]]] = {}  # worker index -> records read so far
        self._appended: dict[int, int] = {}  # worker index -> rows appended to requests.csv
        self._poll_lock = threading.Lock()
        self._halt = threading.Event()
        self._poller: threading.Thread | None = None
        self._state: tuple[float, str] | None = None  # (monotonic time, master state)

    @property
    def t0(self) -> float:
        """Unix time of the load start (offset 0 of the shape); set by :meth:`start`."""
        if self._t0 is None:
            raise LoadError("the load has not been started")
        return self._t0

    @property
    def running(self) -> bool:
        return self._t0 is not None and not self._ended and self._master_state() == "running"

    def _master_state(self, fresh: bool = False) -> str:
        now = time.monotonic()
        if not fresh and self._state is not None and now - self._state[0] < self.state_ttl_s:
            return self._state[1]
        try:
            state = self.jobs.master_state()
        except Exception as exc:  # an API blip is not the end of the load
            log.warning("cannot read the Locust master Job: %s", exc)
            state = self._state[1] if self._state is not None else "running"
        self._state = (now, state)
        return state

    def start(self) -> None:
        """Create the Jobs and return once a request record is in a worker's log; raises
        :class:`LoadError` (after deleting the Jobs) when the master ends first or no record
        comes within ``workers_start_s`` plus ``first_record_timeout_s``."""
        if self._t0 is not None:
            raise LoadError("load already started")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.records_path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(HEADER)
        t0 = time.time() + self.start_delay_s
        self._t0 = t0
        try:
            names = self.jobs.create(t0)
            log.info(
                "Locust as Jobs in %s (%s) against %s; load starts in %.0f s",
                self.jobs.namespace,
                ", ".join(names),
                self.endpoint,
                self.start_delay_s,
            )
            details = load_start_details(
                self.spec,
                self.endpoint,
                workers=self.spec.workers,
                workers_on="kubernetes",
                jobs=names,
            )
            self.timeline.emit("load_start", "locust", details, at=t0)
            self._phases.schedule(t0)
            self._await_jobs_record(t0)
        except BaseException:  # a failed start, Ctrl-C: delete what was created
            self.stop(grace_s=2.0)
            raise
        self._poller = threading.Thread(target=self._poll_loop, name="jobs-records", daemon=True)
        self._poller.start()

    def _await_jobs_record(self, t0: float) -> None:
        if self.jobs.platform.dry_run:
            return
        deadline = t0 + self.first_record_timeout_s
        while True:
            try:
                if self.poll():
                    return
            except Exception as exc:
                log.debug("worker logs not readable yet: %s", exc)
            state = self._master_state(fresh=True)
            if state != "running":
                raise LoadError(
                    f"the Locust master Job {self.jobs.name}-master {state} before any "
                    f"request; see its pod's log (kubectl logs -n {self.jobs.namespace} "
                    f"job/{self.jobs.name}-master)"
                )
            if time.time() > deadline:
                raise LoadError(
                    f"no request record in the Locust worker pods' logs "
                    f"{self.first_record_timeout_s:g} s after the load start (the Jobs had "
                    f"{self.start_delay_s:g} s to start: load.workers_start_s)"
                )
            time.sleep(1.0)

    def poll(self) -> int:
        """Read the worker logs and append the rows not seen before to ``requests.csv``;
        returns how many."""
        with self._poll_lock:
            out: list[list[str]] = []
            for index, rows in self.jobs.read_worker_logs().items():
                if len(rows) >= len(self._rows.get(index, [])):
                    self._rows[index] = rows
                done = self._appended.get(index, 0)
                new = self._rows[index][done:]
                out.extend(new)
                self._appended[index] = done + len(new)
            if out:
                with open(self.records_path, "a", newline="", encoding="utf-8") as fh:
                    csv.writer(fh).writerows(out)
            return len(out)

    def _poll_loop(self) -> None:
        while not self._halt.wait(self.poll_s):
            try:
                self.poll()
            except Exception as exc:
                log.warning("reading the Locust worker logs failed: %s", exc)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the master Job to finish (the shape ended); ``False`` on timeout."""
        if self._t0 is None:
            return False
        done = self.jobs.wait(float("inf") if timeout is None else timeout)
        return done and not self._interrupted

    def load_pids(self) -> dict[str, int]:
        """None: Locust runs in the cluster's pods, out of reach of the local sampler (the
        scorecard says ``instrument.sampled: false``)."""
        return {}

    def record_count(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def stop(self, grace_s: float = 10.0) -> int | None:
        """Read the worker logs a last time, merge them into ``requests.csv`` (sorted) and
        delete the Jobs, Service and ConfigMap; emits ``load_end`` once. Idempotent, and
        safe to call again after being interrupted: later calls finish the job. ``grace_s``
        is not used: the Jobs are deleted, not signalled."""
        if self._ended or (self._t0 is None and not self.jobs.created):
            return self.returncode
        self._phases.cancel()
        stopping_at = time.time()
        self._halt.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join()
        state = self._master_state(fresh=True) if self.jobs.created else "failed"
        if self._exited_by_itself is None:
            self._exited_by_itself = state != "running"
        if state == "running":
            self._interrupted = True  # cut short: the Jobs are deleted under it
        cut_at = stopping_at if self._interrupted else None
        try:
            with self._poll_lock:
                # the worker logs (read now, else as last read) merged into requests.csv
                self.jobs.collect(self._rows)
        finally:
            self.jobs.delete()
        with self._lock:
            if self._ended:
                return self.returncode
            self._ended = True
            self.returncode = {"succeeded": 0, "failed": 1}.get(state)
        records = count_records(self.records_path)
        log.info("Locust Jobs ended (%s), %d request records", state, records)
        self.timeline.emit(
            "load_end",
            "locust",
            {
                "returncode": self.returncode,
                "records": records,
                "exited_by_itself": self._exited_by_itself,
                "killed": False,
                "workers_on": "kubernetes",
                "scheduled": scheduled_arrivals(self.spec, self._t0, cut_at),
            },
        )
        return self.returncode

    def __enter__(self) -> KubernetesJobsRunner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
