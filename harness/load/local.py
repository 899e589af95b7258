"""Runs Locust in a local process of its own and ties it to the run's timeline.

The harness never imports locust (gevent's monkey-patching breaks urllib3 and the
kubernetes client imported before it): Locust is ``python -m locust`` in a child process
with :mod:`harness.load.locustfile`, and the two sides talk through files only.

A Locust master with local workers (:mod:`harness.load.local_workers`) is this same
runner with a :class:`Crew` beside the master process: the crew adds the master's flags,
starts the workers once the master is up, and counts and merges their records.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Protocol

from harness.config import LoadSpec
from harness.connection import check_connection
from harness.errors import LoadError
from harness.load.lifecycle import PhaseEvents, load_start_details, scheduled_arrivals
from harness.load.loadconfig import CONFIG_ENV, read_t0, write_load_config
from harness.load.merge import count_records
from harness.procs import die_with_parent
from harness.rundir import LOAD_CONFIG_FILE, REQUESTS_FILE, RunDir
from harness.timeline import Timeline

log = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def locust_stop_timeout(spec: LoadSpec, wanted: float | None = None) -> int:
    """Locust's ``--stop-timeout``: how long it lets in-flight requests finish when users are
    stopped (ramp-down, end of the shape, SIGINT); whole seconds (Locust's option takes no
    fractions); must stay below :meth:`LocustRunner.stop`'s grace to keep the summary."""
    wanted = min(spec.request_timeout_s, 5.0) if wanted is None else wanted
    return max(1, math.ceil(wanted))


def locust_env(run_dir: Path) -> dict[str, str]:
    """The environment of a Locust process: this one's, the load config of ``run_dir``,
    and the project's root first on ``PYTHONPATH`` (the locustfile imports harness)."""
    env = dict(os.environ)
    env[CONFIG_ENV] = str((run_dir / LOAD_CONFIG_FILE).resolve())
    package_root = str(LOCUSTFILE.resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def send_signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL to ``proc``'s whole session, in case anything was left behind."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class Crew(Protocol):
    """Processes beside the Locust process that send its requests (a master's workers)."""

    def command(self, locust: list[str]) -> list[str]:
        """The command of the Locust process (``locust``), made the crew's master."""
        ...

    def start(self) -> None:
        """Start the crew once the Locust process is launched (its processes read the load's
        t0 from the file the master writes when it is ready)."""
        ...

    def record_count(self) -> int:
        """Request records the crew has written so far."""
        ...

    def collect(self) -> None:
        """Once the Locust process has exited, before ``load_end``: stop the crew and merge
        its records into ``requests.csv``."""
        ...

    def pids(self) -> dict[str, int]:
        """The crew's running processes by telemetry source name (``locust-worker-N``)."""
        ...


class LocustRunner:
    """One Locust run: ``start()``, then ``wait()`` for the shape to end and/or ``stop()``.

    ``start()`` must be called from a thread that outlives the run (the main thread, as a
    rule): the child's parent-death signal fires when the thread that started it exits.
    With a ``crew``, the Locust process is the crew's master and the crew's processes
    send the requests and write the records.
    """

    #: Locust (and its crew) must be ready, and pick t0, within this long of the launch.
    ready_timeout_s = 60.0

    def __init__(
        self,
        spec: LoadSpec,
        endpoint: str,
        run_dir: Path,
        timeline: Timeline,
        *,
        first_record_timeout_s: float = 15.0,
        stop_timeout_s: float | None = None,
        crew: Crew | None = None,
        t0: float | None = None,
    ) -> None:
        """``t0`` pins the load's start (unix seconds), as the Kubernetes Jobs runner does;
        by default the Locust process picks it when it is ready."""
        self.spec = spec
        self.endpoint = endpoint.rstrip("/")
        self.run_dir = Path(run_dir).resolve()
        self.timeline = timeline
        self.first_record_timeout_s = first_record_timeout_s
        self.stop_timeout_s = locust_stop_timeout(spec, stop_timeout_s)
        self.crew = crew
        self._pinned_t0 = t0
        self.records_path = self.run_dir / REQUESTS_FILE
        self.log_path = RunDir(self.run_dir).locust_log
        self.csv_prefix = RunDir(self.run_dir).locust_csv_prefix
        self._t0: float | None = None
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None
        self._phases = PhaseEvents(spec.shape, timeline)
        self._lock = threading.Lock()
        self._exited_by_itself: bool | None = None
        self._interrupted = False  # SIGINT sent
        self._killed = False
        self._stopping_at: float | None = None  # when stop() found Locust still running
        self._ended = False  # load_end emitted

    @property
    def t0(self) -> float:
        """Unix time of the load start (offset 0 of the shape); set by :meth:`start`."""
        if self._t0 is None:
            raise LoadError("the load has not been started")
        return self._t0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        locust = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--host",
            self.endpoint,
            "--csv",
            str(self.csv_prefix),
            "--only-summary",
            "--exit-code-on-error",
            "0",
            "--stop-timeout",
            str(self.stop_timeout_s),
            "--loglevel",
            "WARNING",
        ]
        return locust if self.crew is None else self.crew.command(locust)

    def start(self) -> None:
        """Launch Locust and return once the first request record is on disk.

        The load's t0 is the moment Locust is ready (imported, its crew connected): the
        Locust process that owns the shape picks it and writes it to ``load_t0.json``;
        ``load_start`` (at t0) and the phase events follow once it is read, so Locust's
        start-up never eats the schedule. Raises :class:`LoadError` (with the end of
        ``locust.log``) when Locust exits early, is not ready within ``ready_timeout_s``,
        or no record appears within ``first_record_timeout_s`` of t0.
        """
        if self._proc is not None:
            raise LoadError("load already started")
        # the token's variable set, the CA bundle loaded (ConfigError), verify: false warned
        check_connection(self.spec, os.environ, self.endpoint)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        t0_path = RunDir(self.run_dir).load_t0
        t0_path.unlink(missing_ok=True)
        write_load_config(
            self.run_dir / LOAD_CONFIG_FILE,
            self.spec,
            self.records_path.resolve(),
            self._pinned_t0,
            None if self._pinned_t0 is not None else t0_path,
        )
        env = locust_env(self.run_dir)
        already = self.record_count()
        if already:
            log.warning("%s already holds %d records; appending", self.records_path, already)
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115
        parent = os.getpid()
        launched = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self.command(),
                cwd=self.run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(parent),
            )
        except OSError as exc:
            self._log_fh.close()
            raise LoadError(f"could not start Locust: {exc}") from exc
        log.info("Locust started (pid %d) against %s", self._proc.pid, self.endpoint)
        try:
            if self.crew is not None:  # they read the master's t0 when their users start
                self.crew.start()
            t0 = self._pinned_t0 if self._pinned_t0 is not None else self._await_t0(launched)
            self._t0 = t0
            log.info("Locust ready; the load starts at %.3f", t0)
            self.timeline.emit(
                "load_start",
                "locust",
                load_start_details(self.spec, self.endpoint, pid=self._proc.pid),
                at=t0,
            )
            self._phases.schedule(t0)
            self._await_first_record(launched, t0, already)
        except LoadError:
            self.stop(grace_s=2.0)
            raise

    def _exited(self, code: int, launched: float) -> LoadError:
        after = time.monotonic() - launched
        return LoadError(
            f"Locust exited with code {code} {after:.1f} s after start, before any "
            f"request; end of {self.log_path}:\n{_tail(self.log_path)}"
        )

    def _await_t0(self, launched: float) -> float:
        """The t0 the Locust process picked once ready (``load_t0.json``)."""
        assert self._proc is not None
        path = RunDir(self.run_dir).load_t0
        deadline = launched + self.ready_timeout_s
        while True:
            code = self._proc.poll()
            t0 = read_t0(path)
            if t0 is not None:
                return t0
            if code is not None:
                raise self._exited(code, launched)
            if time.monotonic() > deadline:
                raise LoadError(
                    f"Locust was not ready {self.ready_timeout_s:g} s after start (no t0 in "
                    f"{path}); end of {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _await_first_record(self, launched: float, t0: float, already: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + max(0.0, t0 - time.time()) + self.first_record_timeout_s
        while True:
            code = self._proc.poll()
            if self.record_count() > already:
                return
            if code is not None:
                raise self._exited(code, launched)
            if time.monotonic() > deadline:
                raise LoadError(
                    f"no request record in {self.records_path} "
                    f"{self.first_record_timeout_s:g} s after the load start; "
                    f"end of {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for Locust to exit by itself (the shape ended); ``False`` on timeout."""
        if self._proc is None:
            return False
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return not self._interrupted

    def stop(self, grace_s: float = 10.0) -> int | None:
        """Stop Locust (SIGINT, so it writes its summary; SIGKILL after ``grace_s``).

        Cancels pending phase events and emits ``load_end`` once. Idempotent, and safe to
        call again after being interrupted (a second Ctrl-C): later calls finish the job
        and return the same exit code.
        """
        proc = self._proc
        if proc is None or self._ended:
            return self.returncode
        self._phases.cancel()
        if self._exited_by_itself is None:
            self._exited_by_itself = proc.poll() is not None
            if not self._exited_by_itself:
                self._stopping_at = time.time()
        if proc.poll() is None:
            if not self._interrupted:
                self._interrupted = True
                send_signal(proc, signal.SIGINT)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("Locust did not stop within %.1f s of SIGINT, killing it", grace_s)
                self._killed = True
        kill_group(proc)
        returncode = proc.wait()
        with self._lock:
            if self._ended:
                return self.returncode
            self._ended = True
            self.returncode = returncode
        if self._log_fh is not None:
            self._log_fh.close()
        if self.crew is not None:
            self.crew.collect()
        records = count_records(self.records_path)
        log.info("Locust ended (code %s), %d request records", returncode, records)
        self.timeline.emit(
            "load_end",
            "locust",
            {
                "returncode": returncode,
                "records": records,
                "exited_by_itself": self._exited_by_itself,
                "killed": self._killed,
                "scheduled": scheduled_arrivals(self.spec, self._t0, self._stopping_at),
            },
        )
        return returncode

    def load_pids(self) -> dict[str, int]:
        """The running Locust processes on this machine by telemetry source name: ``locust``
        (this process; a crew's master) and the crew's (their CPU is sampled)."""
        proc = self._proc
        pids = {"locust": proc.pid} if proc is not None and proc.poll() is None else {}
        if self.crew is not None:
            pids.update(self.crew.pids())
        return pids

    def record_count(self) -> int:
        """Request records written so far (with a crew, the sum of its workers' files)."""
        return count_records(self.records_path) if self.crew is None else self.crew.record_count()

    def __enter__(self) -> LocustRunner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
