"""Runs Locust in a process of its own and ties it to the run's timeline.

The harness never imports locust (gevent's monkey-patching breaks urllib3 and the
kubernetes client imported before it): Locust is ``python -m locust`` in a child process
with :mod:`harness.load.locustfile`, and the two sides talk through files only.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from harness.config import LoadSpec
from harness.errors import LoadError
from harness.load.loadconfig import CONFIG_ENV, CONFIG_FILE, write_load_config
from harness.load.shapes import duration, level_at, peak_level, phase_schedule
from harness.procs import die_with_parent
from harness.records import REQUESTS_FILE
from harness.timeline import Timeline

log = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOG_FILE = "locust.log"
CSV_PREFIX = "locust"  # Locust writes locust_stats.csv, locust_failures.csv, ...


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def load_start_details(spec: LoadSpec, endpoint: str, **extra: Any) -> dict[str, Any]:
    """What the ``load_start`` timeline event says about the load (the scorer reads
    ``duration_s``; the live view reads the levels)."""
    shape = spec.shape
    return {
        "shape": shape.kind,
        "mode": spec.mode,
        "user": spec.user,
        "level": level_at(shape, 0.0),
        "peak_level": peak_level(shape),
        "endpoint": endpoint,
        **extra,
        "duration_s": duration(shape),
    }


def count_records(path: Path) -> int:
    """Rows in ``requests.csv`` (the header excluded); 0 when there is no file yet."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return max(0, sum(1 for _ in csv.reader(fh)) - 1)
    except OSError:
        return 0


class LocustRunner:
    """One Locust run: ``start()``, then ``wait()`` for the shape to end and/or ``stop()``.

    ``start()`` must be called from a thread that outlives the run (the main thread, as a
    rule): the child's parent-death signal fires when the thread that started it exits.
    """

    #: Locust's startup time (imports) is absorbed by starting the shape this late.
    start_delay_s = 2.0
    #: Exiting sooner than this after launch is a failed start.
    early_exit_s = 2.0

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
        self.spec = spec
        self.endpoint = endpoint.rstrip("/")
        self.run_dir = Path(run_dir).resolve()
        self.timeline = timeline
        self.first_record_timeout_s = first_record_timeout_s
        # how long Locust lets in-flight requests finish when users are stopped (ramp-down,
        # end of the shape, SIGINT); whole seconds (Locust's option takes no fractions);
        # must stay below stop()'s grace to keep the summary
        wanted = min(spec.request_timeout_s, 5.0) if stop_timeout_s is None else stop_timeout_s
        self.stop_timeout_s = max(1, math.ceil(wanted))
        self.records_path = self.run_dir / REQUESTS_FILE
        self.log_path = self.run_dir / LOG_FILE
        self.csv_prefix = self.run_dir / CSV_PREFIX
        self._t0: float | None = None
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        self._exited_by_itself: bool | None = None
        self._interrupted = False  # SIGINT sent
        self._killed = False
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
        return [
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

    def start(self) -> None:
        """Launch Locust and return once the first request record is on disk.

        Raises :class:`LoadError` (with the end of ``locust.log``) when Locust exits early
        or no record appears within ``first_record_timeout_s``.
        """
        if self._proc is not None:
            raise LoadError("load already started")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.time() + self.start_delay_s
        config_path = self.run_dir / CONFIG_FILE
        write_load_config(config_path, self.spec, self.records_path.resolve(), t0)
        env = dict(os.environ)
        env[CONFIG_ENV] = str(config_path.resolve())
        package_root = str(LOCUSTFILE.resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
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
        self._t0 = t0
        log.info("Locust started (pid %d) against %s", self._proc.pid, self.endpoint)
        self.timeline.emit(
            "load_start",
            "locust",
            load_start_details(self.spec, self.endpoint, pid=self._proc.pid),
            at=t0,
        )
        self._schedule_phases(t0)
        try:
            self._await_first_record(launched, already)
        except LoadError:
            self.stop(grace_s=2.0)
            raise

    def _schedule_phases(self, t0: float) -> None:
        for offset, phase in phase_schedule(self.spec.shape):
            details = {
                "phase": phase,
                "offset_s": offset,
                "level": level_at(self.spec.shape, offset),
            }
            timer = threading.Timer(
                max(0.0, t0 + offset - time.time()),
                self.timeline.emit,
                args=("phase", "load", details),
                kwargs={"at": t0 + offset},
            )
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def _await_first_record(self, launched: float, already: int) -> None:
        assert self._proc is not None
        deadline = launched + self.start_delay_s + self.first_record_timeout_s
        while True:
            code = self._proc.poll()
            if self.record_count() > already:
                return
            if code is not None:
                after = time.monotonic() - launched
                raise LoadError(
                    f"Locust exited with code {code} {after:.1f} s after start, before any "
                    f"request; end of {self.log_path}:\n{_tail(self.log_path)}"
                )
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
        for timer in self._timers:
            timer.cancel()
        if self._exited_by_itself is None:
            self._exited_by_itself = proc.poll() is not None
        if proc.poll() is None:
            if not self._interrupted:
                self._interrupted = True
                self._signal(proc, signal.SIGINT)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("Locust did not stop within %.1f s of SIGINT, killing it", grace_s)
                self._killed = True
        self._killpg(proc)  # the whole session, in case anything was left behind
        returncode = proc.wait()
        with self._lock:
            if self._ended:
                return self.returncode
            self._ended = True
            self.returncode = returncode
        if self._log_fh is not None:
            self._log_fh.close()
        self.collect_records()
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
            },
        )
        return returncode

    def record_count(self) -> int:
        """Request records written so far (the distributed runner sums its workers' files)."""
        return count_records(self.records_path)

    def collect_records(self) -> None:
        """Called once Locust has exited, before ``load_end``: the distributed runner merges
        its workers' records into ``requests.csv`` here."""

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)

    @staticmethod
    def _killpg(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def __enter__(self) -> LocustRunner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
