"""Run a loaded plan: deploy once, each experiment in turn on that deployment, a reset and
a health gate between them, ``gameday.json`` after each, the reports at the end.

Everything started is stopped in ``finally``, on success, on error, on Ctrl-C and on
SIGTERM (turned into the same interrupt): the experiment that runs is aborted as ``gpuchaos
run`` aborts one (faults reverted, its folder scorable), the rest are ``not run``,
``gameday.json`` and the reports are still written, and the platform is torn down.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, RunAborted
from harness.faults.lifecycle import revert_everything
from harness.gameday.prepare import Entry, LoadedPlan
from harness.gameday.record import GAMEDAY_TIMELINE, GamedayRecord
from harness.gameday.reset import reset_platform
from harness.platforms import make_platform
from harness.procs import interrupt_on_sigint, interrupt_on_sigterm
from harness.rundir import RunDir
from harness.runner import RunResult, execute, tear_down
from harness.timeline import Timeline

log = logging.getLogger(__name__)

#: Called with a run folder when its run begins, and None when it ends (the CLI points the
#: run's harness.log there).
RunLog = Callable[[Path | None], None]

_STATUS = {"pass": "passed", "fail": "failed", "aborted": "aborted", "incomplete": "incomplete"}


def _status(result: RunResult) -> tuple[str, str | None]:
    """gameday.json's status and reason of a finished run."""
    if isinstance(result.error, RunAborted):
        return "aborted", str(result.error)
    if result.error is not None:
        return "error", str(result.error)
    verdict = str(result.scorecard.get("verdict"))
    status = _STATUS.get(verdict, "error")
    if status == "failed":
        missed = [s.get("name") for s in result.scorecard.get("slos") or [] if not s.get("passed")]
        if missed:
            return status, "SLO missed: " + ", ".join(map(str, missed))
        return status, str(result.scorecard.get("note") or "SLO missed")
    return status, None if status == "passed" else f"verdict {verdict}"


def _interrupt_reason(exc: BaseException) -> str:
    return f"interrupted ({'SIGTERM' if str(exc) == 'SIGTERM' else 'Ctrl-C'})"


class GamedayRun:
    """One game day in ``folder`` (created, empty)."""

    def __init__(
        self,
        loaded: LoadedPlan,
        folder: Path,
        *,
        kube_context: str | None = None,
        pushgateway: str | None = None,
        run_log: RunLog | None = None,
    ) -> None:
        self.loaded = loaded
        self.folder = folder
        self.kube_context = kube_context
        self.pushgateway = pushgateway
        self.run_log = run_log or (lambda _path: None)
        self.record = GamedayRecord(folder, loaded)
        self.timeline = Timeline(folder / GAMEDAY_TIMELINE)
        self.platform: Any = None
        self.baseline = 0  # replicas of the shared deployment as deployed
        self.stopped: str | None = None  # why the rest is not run

    def run(self) -> int:
        """The game day; returns its exit code (0 all passed, 1 an SLO missed, 2 an
        experiment could not run)."""
        self.record.flush()
        old_term = interrupt_on_sigterm()
        old_int = interrupt_on_sigint()
        current: int | None = None
        try:
            last_end: float | None = None
            for n, entry in enumerate(self.loaded.entries):
                if self.stopped is not None:
                    break
                current = n
                if last_end is not None and self.loaded.plan.pause_s > 0:
                    log.info("pause of %g s before the next experiment", self.loaded.plan.pause_s)
                    time.sleep(self.loaded.plan.pause_s)
                if not self._prepare(n, entry):
                    break
                self._run_one(n, entry)
                last_end = time.monotonic()
                current = None
        except KeyboardInterrupt as exc:
            self.stopped = _interrupt_reason(exc)
            log.warning("game day %s: the rest is not run", self.stopped)
            if current is not None:
                self._after_interrupt(current)
        finally:
            self._finish()
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
        return int(self.record.data["exit_code"])

    # -- the steps ----------------------------------------------------------------------

    def _prepare(self, n: int, entry: Entry) -> bool:
        """Deploy (first shared experiment) or reset (the next ones); False: the platform
        could not be made healthy, the rest is not run."""
        if not entry.shared:
            return True
        if self.platform is None:
            return self._deploy(n, entry)
        self.timeline.emit("phase", "gameday", {"phase": "reset", "next": entry.name})
        log.info("reset before %s", entry.name)
        try:
            reset = reset_platform(
                self.platform, self.baseline, entry.experiment.spec, self.loaded.plan.health_gate
            )
        except HarnessError as exc:
            self.stopped = f"the platform was not healthy before {entry.name}: {exc}"
            log.error("%s", self.stopped)
            self.timeline.emit("abort", "gameday", {"reason": self.stopped})
            return False
        details: dict[str, Any] = {"reset_s": round(reset.seconds, 3), "actions": reset.actions}
        if reset.gate is not None:
            details["gate_s"] = round(reset.gate.seconds, 3)
        self.timeline.emit("phase", "gameday", {"phase": "healthy", **details})
        log.info("reset and health gate: %.1f s (%s)", reset.seconds, ", ".join(reset.actions))
        print(f"gameday: reset before {entry.name}: {reset.seconds:.1f} s", flush=True)
        self.record.update(n, reset_s=round(reset.seconds, 3))
        return True

    def _deploy(self, n: int, entry: Entry) -> bool:
        spec = entry.experiment.spec
        self.timeline.emit("phase", "gameday", {"phase": "deploy"})
        started = time.monotonic()
        try:
            # made first, then started: an interrupt during the start still finds it to stop
            self.platform = make_platform(spec, self.timeline, self.folder, self.kube_context)
            self.platform.start()
        except HarnessError as exc:
            self.stopped = f"the shared platform could not be deployed: {exc}"
            log.error("%s", self.stopped)
            self.record.update(n, status="error", reason=str(exc)[:300], exit_code=2)
            return False
        deploy_s = round(time.monotonic() - started, 3)
        self.baseline = len(self.platform.replicas())
        self.record.data["deploy_s"] = deploy_s
        self.record.flush()
        print(f"gameday: deployed in {deploy_s:.1f} s", flush=True)
        return True

    def _run_one(self, n: int, entry: Entry) -> None:
        run_dir = self.folder / f"{n + 1:02d}-{entry.name}"
        run_dir.mkdir()
        RunDir(run_dir).logs.mkdir()
        self.record.update(n, run_dir=run_dir.name, status="running", reason=None)
        print(f"gameday: [{n + 1}/{len(self.loaded.entries)}] {entry.name} -> {run_dir}")
        self.run_log(run_dir)
        try:
            result = execute(
                entry.experiment,
                run_dir,
                kube_context=self.kube_context,
                platform=self.platform if entry.shared else None,
            )
        except HarnessError as exc:  # the run could not even begin (its own platform's kind)
            log.error("%s could not run: %s", entry.name, exc)
            self.record.update(n, status="error", reason=str(exc)[:300], exit_code=2)
            if self.loaded.plan.on_failure == "stop":
                self.stopped = f"on_failure: stop, after {run_dir.name} (error)"
            return
        finally:
            self.run_log(None)
            if entry.shared and self.platform is not None:
                self.platform.attach(self.timeline, self.folder)
        status, reason = _status(result)
        self.record.update(n, status=status, reason=reason, exit_code=result.exit_code)
        print(f"gameday: {entry.name}: {status}{f' ({reason})' if reason else ''}", flush=True)
        self._push(entry, result.scorecard)
        if result.interrupted:
            self.stopped = _interrupt_reason(KeyboardInterrupt(_signal_of(result)))
        elif status != "passed" and self.loaded.plan.on_failure == "stop":
            self.stopped = f"on_failure: stop, after {run_dir.name} ({status})"

    def _after_interrupt(self, n: int) -> None:
        """The experiment that ran when the interrupt came outside its own handling: scored
        when its folder has a timeline, else it did not start."""
        item = self.record.experiments[n]
        if item["run_dir"] is None or item["status"] != "running":
            return
        from harness.scoring.rundir import score_run_dir

        try:
            card = score_run_dir(self.folder / item["run_dir"])
            code = int(card.get("exit_code", 2))
        except (HarnessError, OSError, ValueError) as exc:
            log.warning("could not score %s: %s", item["run_dir"], exc)
            code = 2
        self.record.update(n, status="aborted", reason=self.stopped, exit_code=max(code, 2))

    def _finish(self) -> None:
        for attempt in range(3):
            try:
                self._close()
                return
            except KeyboardInterrupt:
                log.warning("interrupted while closing the game day (%d); again", attempt + 1)

    def _close(self) -> None:
        """Faults reverted, platform down, gameday.json closed, reports written."""
        revert_everything()
        if self.platform is not None:
            tear_down(self.platform)
            self.platform = None
            self.timeline.emit("phase", "gameday", {"phase": "torn down"})
        for item in self.record.data["experiments"]:
            if item["status"] == "running":  # cut before its run could say
                item["status"], item["exit_code"] = "aborted", 2
        if self.stopped is not None:
            self.record.not_run(self.stopped)
        else:
            self.record.not_run("not reached")
        self.record.finish()
        self.timeline.close()
        _write_reports(self.folder)

    def _push(self, entry: Entry, scorecard: dict[str, Any]) -> None:
        if not self.pushgateway:
            return
        try:
            from harness.report.pushgateway import (  # type: ignore[import-not-found,unused-ignore]
                push_scorecard,
            )
        except ImportError:
            log.warning("--pushgateway: harness.report.pushgateway is not available; not pushed")
            return
        try:
            push_scorecard(self.pushgateway, scorecard, entry.name, plan=self.loaded.name)
        except Exception as exc:  # a push problem never changes the verdict
            log.warning("pushing %s to %s failed: %s", entry.name, self.pushgateway, exc)


def _signal_of(result: RunResult) -> str:
    return "SIGTERM" if "SIGTERM" in str(result.error) else "Ctrl-C"


def _write_reports(folder: Path) -> None:
    """gameday.html, junit.xml and summary.md (engineer 2's harness.gameday.report); a
    report problem never changes the exit code."""
    try:
        from harness.gameday.report import (  # type: ignore[import-not-found,unused-ignore]
            write_gameday_reports,
        )
    except ImportError:
        log.warning("game-day reports not written: harness.gameday.report is not available")
        return
    try:
        for path in write_gameday_reports(folder):
            log.info("wrote %s", path)
    except Exception as exc:
        log.warning("game-day reports incomplete: %s", exc)
