"""The loop of ``gpuchaos run``: deploy, load, chaos, stop, score.

Everything started is stopped in ``finally`` blocks, on success, on error, on Ctrl-C and on
SIGTERM (which is turned into the same interrupt). A run that is cut short still leaves a
scorable folder: records are flushed as they come, and the scorecard is written anyway.

The deployment is separable from the run (:func:`bring_up`, :func:`execute` with
``platform=``, :func:`tear_down`) so a game day (:mod:`harness.gameday`) deploys once and
hands the same platform to each experiment: attached to that run's timeline and folder for
the run, left running at its end with every fault reverted.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness import __version__
from harness.chaos.context import RunContext, activate
from harness.chaos.guards import StopGuard
from harness.errors import ChaosError, HarnessError, LoadError, RunAborted
from harness.experiment import Experiment
from harness.faults.lifecycle import revert_everything
from harness.live import LiveServer
from harness.load.factory import LoadRunner, make_load_runner
from harness.load.shapes import duration as load_duration
from harness.planner import preflight_checks
from harness.platforms import make_platform
from harness.procs import interrupt_on_sigint, interrupt_on_sigterm
from harness.progress import LiveProgress
from harness.report import write_reports
from harness.rundir import (
    EXPERIMENT_FILE,
    JOURNAL_FILE,
    REQUESTS_FILE,
    TELEMETRY_FILE,
    TIMELINE_FILE,
)
from harness.scoring.rundir import score_run_dir
from harness.telemetry import TelemetrySampler, dcgm_reader
from harness.tenancy_run import records_dir, write_tenant_documents
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.config import HarnessSpec
    from harness.platforms.base import Platform as AnyPlatform

log = logging.getLogger(__name__)

#: chaoslib settings for every run: rollbacks run even when the method was interrupted.
CHAOS_SETTINGS: dict[str, Any] = {"runtime": {"rollbacks": {"strategy": "always"}}}


@dataclass
class RunResult:
    run_dir: Path
    scorecard: dict[str, Any]
    exit_code: int
    error: HarnessError | None = None
    #: stopped by Ctrl-C or SIGTERM (not by an abort guard): a game day stops there too
    interrupted: bool = False


def _journal_failure(journal: dict[str, Any]) -> str | None:
    """The first failed activity of the method or rollbacks, as one line."""
    for section in ("run", "rollbacks"):
        for run in journal.get(section) or []:
            if run.get("status") == "failed":
                exc = run.get("exception") or []
                last = exc[-1].strip() if exc else "failed"
                name = (run.get("activity") or {}).get("name", "?")
                return f"activity '{name}' failed: {last}"
    return None


def _sleep_while_loading(load: LoadRunner, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not load.running:
            raise LoadError("Locust stopped before the experiment began; see locust.log")
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def bring_up(
    spec: HarnessSpec, timeline: Timeline, run_dir: Path, kube_context: str | None = None
) -> AnyPlatform:
    """Make and start the platform ``spec`` names (every replica Ready); its events go to
    ``timeline`` and its logs under ``run_dir`` until ``attach`` moves them. A platform that
    cannot start stops itself, so nothing is left running."""
    platform: AnyPlatform = make_platform(spec, timeline, run_dir, kube_context)
    platform.start()
    return platform


def tear_down(platform: AnyPlatform) -> None:
    """Stop a platform from :func:`bring_up`; a second Ctrl-C must not skip it."""
    _stop_all([("platform", platform.stop)])


def execute(
    experiment: Experiment,
    run_dir: Path,
    kube_context: str | None = None,
    live_panel: bool | None = None,
    platform: AnyPlatform | None = None,
    live: LiveServer | None = None,
) -> RunResult:
    """Run ``experiment`` with its results in ``run_dir``; returns the scorecard and exit code.
    ``live_panel``: False forces plain progress lines (``--ci``); None lets
    :class:`LiveProgress` decide (a terminal, not CI).

    ``platform``: a deployment that runs already (a game day's, from :func:`bring_up`); the
    run attaches it to its own timeline and folder and leaves it running at the end, with
    every fault reverted. Without it the run deploys the experiment's own and stops it.

    ``live``: the live page (``--serve``); it is shown the platform once that is up. The
    run starts it then (printing its URL) and stops it at the end, unless it was started
    already (a drill's own server, which outlives the run)."""
    from chaoslib.experiment import run_experiment

    spec = experiment.spec
    (run_dir / EXPERIMENT_FILE).write_text(
        yaml.safe_dump(experiment.document, sort_keys=False), encoding="utf-8"
    )
    write_tenant_documents(experiment.document, spec, run_dir)  # tenancy: each tenant's
    records = records_dir(run_dir, spec)  # whose requests.csv stands for the run's
    timeline = Timeline(run_dir / TIMELINE_FILE)
    owned = platform is None
    start: dict[str, Any] = {"harness_version": __version__}
    if platform is not None:  # which replicas (and pids) the run found running
        start["shared_platform"] = True
        start["replicas"] = {r.id: r.pid for r in platform.replicas()}
    timeline.emit("run_start", experiment.name, start)
    for check in preflight_checks(experiment):  # spare capacity for each node loss
        log.info("preflight: %s", check.line())
        timeline.emit("preflight", check.node, check.as_dict())
    if platform is None:
        platform = make_platform(spec, timeline, run_dir, kube_context)
    else:
        platform.attach(timeline, run_dir)
    assert platform is not None
    shared: AnyPlatform = platform
    telemetry = TelemetrySampler(
        platform,
        run_dir / TELEMETRY_FILE,
        spec.telemetry_interval_s,
        dcgm=dcgm_reader(spec.telemetry),  # GPU rows from DCGM via Prometheus, when set
    )
    load: LoadRunner | None = None
    progress = LiveProgress(
        name=experiment.name,
        requests_path=records / REQUESTS_FILE,
        platform=platform,
        telemetry=telemetry,
        duration_s=load_duration(spec.load.shape),
        interactive=live_panel,
    )
    timeline.subscribe(progress.on_event)
    guard = StopGuard(
        spec.stop_conditions,
        records,
        lambda: sum(1 for r in shared.replicas() if r.state == "ready"),
        spec.load.request_timeout_s * 1000.0,
    )
    error: HarnessError | None = None
    interrupted = False
    live_owned = False
    old_term = interrupt_on_sigterm()
    old_int = interrupt_on_sigint()
    try:
        progress.start()
        if owned:
            log.info("starting the workload (%s)", type(platform).__name__)
            platform.start()
        else:
            log.info("the workload runs already (%s): shared", type(platform).__name__)
        if live is not None:
            live_owned = _serve(live, platform)
        telemetry.start()
        load = make_load_runner(spec.load, platform.endpoint, run_dir, timeline, platform=platform)
        telemetry.watch_load(load.load_pids)  # is the load generator the bottleneck?
        load.start()
        log.info("load started against %s; warming up %.0f s", load.endpoint, spec.warmup_s)
        _sleep_while_loading(load, spec.warmup_s)
        guard.start()
        ctx = RunContext(platform, timeline, run_dir, spec, load.t0)
        with activate(ctx):
            journal = run_experiment(experiment.document, settings=CHAOS_SETTINGS)
        (run_dir / JOURNAL_FILE).write_text(json.dumps(journal, indent=2, default=str))
        if journal.get("status") == "interrupted":
            raise KeyboardInterrupt("experiment interrupted")
        failure = _journal_failure(journal)
        if failure:
            raise ChaosError(failure)
        before = (journal.get("steady_states") or {}).get("before") or {}
        if before and not before.get("steady_state_met"):
            log.warning(
                "the steady-state hypothesis did not hold before the method: "
                "no fault was injected (the service missed its SLOs under load alone)"
            )
        remaining = load_duration(spec.load.shape) - (time.time() - load.t0)
        if remaining > 0:
            log.info("experiment done; load runs %.0f s more", remaining)
            load.wait(remaining + 15)
    except KeyboardInterrupt as exc:
        if guard.reason is not None:
            error = RunAborted(f"{guard.reason}; method stopped, faults reverted")
        else:
            interrupted = True
            error = RunAborted(
                f"run interrupted ({exc or 'Ctrl-C'}); faults reverted, partial results"
            )
        timeline.emit("abort", experiment.name, {"reason": str(error)})
    except HarnessError as exc:
        error = exc
        timeline.emit("abort", experiment.name, {"reason": str(exc)})
    finally:
        guard.stop()
        _revert_faults()
        _teardown(load, telemetry, platform if owned else None)
        if live_owned and live is not None:
            _stop_all([("live page", live.stop)])
        progress.stop()
        timeline.emit("run_end", experiment.name)
        timeline.close()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if old_int is not None:
            signal.signal(signal.SIGINT, old_int)
    scorecard = score_run_dir(run_dir)
    warning = (scorecard.get("instrument") or {}).get("warning")
    if warning:
        log.warning("%s", warning)
    _write_reports(run_dir, scorecard)
    exit_code = 2 if error is not None else int(scorecard["exit_code"])
    return RunResult(run_dir, scorecard, exit_code, error, interrupted)


def _serve(live: LiveServer, platform: AnyPlatform) -> bool:
    """Show ``live`` the platform; start it and print its URL unless it runs already.
    Returns whether this run started it (and so stops it)."""
    live.set_source(platform)
    if live.running:
        return False
    live.start()
    print(f"live page: {live.url}", flush=True)
    log.info("live page: %s", live.url)
    return True


def _write_reports(run_dir: Path, scorecard: dict[str, Any]) -> None:
    """report.html, junit.xml and summary.md; a report problem never changes the verdict."""
    try:
        write_reports(run_dir, scorecard)
    except Exception as exc:
        log.warning("reports incomplete: %s (regenerate with gpuchaos report %s)", exc, run_dir)


def _revert_faults() -> None:
    """Undo every fault still in place (rollbacks normally did); a Ctrl-C must not skip it."""
    for _ in range(3):
        try:
            left = revert_everything()
            if left:
                log.warning("reverted %d fault(s) the experiment left in place", left)
            return
        except KeyboardInterrupt:
            log.warning("interrupted while reverting faults; reverting again")


def _teardown(
    load: LoadRunner | None, telemetry: TelemetrySampler, platform: AnyPlatform | None
) -> None:
    """Stop load, telemetry and (when the run owns it) the platform."""
    stops: list[tuple[str, Callable[[], object]]] = [("telemetry", telemetry.stop)]
    if load is not None:
        stops.insert(0, ("load", load.stop))
    if platform is not None:
        stops.append(("platform", platform.stop))
    _stop_all(stops)


def _stop_all(stops: list[tuple[str, Callable[[], object]]]) -> None:
    """Call each stop in turn; a second Ctrl-C must not skip any of them."""
    for what, stop in stops:
        for _ in range(3):
            try:
                stop()
                break
            except KeyboardInterrupt:
                log.warning("interrupted while stopping %s; stopping it again", what)
            except Exception:
                log.exception("stopping %s failed", what)
                break
