"""One drill from start to debrief.

In order: draw the scenario (:mod:`harness.drill.pick`), write and load its experiment
(:mod:`harness.drill.document`), deploy the base's platform, serve the live page with the
trainee's view and actions (and the facilitator's page), play the red herrings, run the
experiment through the normal runner on that platform, then tear down and write the
debrief. The drill ends when the load ends, or earlier when the trainee declares the
incident resolved: that interrupts the run as Ctrl-C would (the runner reverts every fault
and scores what was recorded), and the drill counts it as its normal end.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.drill.actions import ACTIONS, TraineeActions
from harness.drill.debrief import write_debrief, write_drill_json
from harness.drill.document import DRILL_TITLE, write_experiment
from harness.drill.facilitator import HandInjector
from harness.drill.herrings import HerringThread
from harness.drill.outcome import DrillRecord, build_drill
from harness.drill.pack import LoadedPack
from harness.drill.panel import facilitator_panel, trainee_panel
from harness.drill.pick import Scenario, pick_scenario
from harness.drill.view import hidden_words, trainee_view
from harness.runner import RunResult, bring_up, execute, tear_down
from harness.timeline import Timeline

log = logging.getLogger(__name__)

#: The running drill's address and token, for ``gpuchaos drill act`` (mode 0600).
CONNECTION_FILE = "drill-connection.json"
#: The platform's events while it deploys, before the run's timeline exists.
DEPLOY_TIMELINE = "deploy-timeline.jsonl"


@dataclass
class DrillOptions:
    seed: int
    host: str = "127.0.0.1"
    port: int = 0
    serve: bool = True  # serve the page (always when there is a trainee)
    allow_remote: bool = False
    trainee: bool = True
    facilitator: bool = False
    baseline: dict[str, Any] | None = None  # damage figures of the scenario left alone


class Drill:
    """A drill of ``loaded`` in ``run_dir``; :meth:`run` returns drill.json's content."""

    def __init__(
        self, loaded: LoadedPack, options: DrillOptions, run_dir: Path, announce: Any = print
    ) -> None:
        self.loaded = loaded
        self.options = options
        self.run_dir = run_dir
        self.announce = announce
        self.scenario: Scenario = pick_scenario(loaded, options.seed)
        self.resolved = False
        self._running = False
        self._lock = threading.Lock()
        self._main = threading.main_thread()
        self.actions: TraineeActions | None = None
        self.hand: HandInjector | None = None
        self.server: Any = None

    # -- the end, by the trainee --------------------------------------------------------

    def _resolve(self) -> None:
        """The trainee declared the incident resolved: end the run now (as Ctrl-C does)."""
        with self._lock:
            self.resolved = True
            if not self._running:
                return
            self._running = False
        log.info("declared resolved: ending the drill")
        ident = self._main.ident
        if ident is not None and self._main.is_alive():
            signal.pthread_kill(ident, signal.SIGINT)

    # -- the page -------------------------------------------------------------------------

    def _serve(self, platform: Any) -> None:
        from harness.live.server import LiveServer

        o = self.options
        if not (o.serve or o.trainee):
            return
        server = LiveServer(self.run_dir, DRILL_TITLE, o.host, o.port, o.allow_remote, platform)
        server.set_view(trainee_view(hidden_words()))
        if self.actions is not None:
            actions = self.actions
            nodes, replicas = actions.nodes(), actions.replicas()
            server.add_panel(
                "drill",
                lambda: trainee_panel(
                    nodes, sorted({r.id for r in platform.replicas()} | set(replicas))
                ),
            )
            for name in ACTIONS:
                server.add_action(name, functools.partial(actions.act, name))
        if o.facilitator:
            hand = self.hand = HandInjector(platform, self.run_dir)
            targets = list(platform.nodes()) + sorted(r.id for r in platform.replicas())
            server.add_facilitator_data("drill", self._truth)
            server.add_panel(
                "inject", lambda: facilitator_panel(hand.faults(), targets), facilitator=True
            )
            server.add_action("inject", hand.inject, facilitator=True)
        server.start()
        self.server = server
        self._write_connection(server)
        self.announce(f"drill page: {server.url}")
        if o.facilitator:
            self.announce(f"facilitator page: {server.facilitator_url}")

    def _write_connection(self, server: Any) -> None:
        import json

        host = server.host if server.host not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        data = {"base": f"http://{host}:{server.port}", "token": server.token, "url": server.url}
        path = self.run_dir / CONNECTION_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.chmod(path, 0o600)

    def _truth(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.as_dict(),
            "trainee": self.actions.snapshot() if self.actions else [],
            "hand_injected": self.hand.injected if self.hand else [],
        }

    # -- the drill ------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        experiment = write_experiment(self.loaded, self.scenario, self.run_dir)
        deploy = Timeline(self.run_dir / DEPLOY_TIMELINE)
        self.announce("deploying the service; the drill starts when it is Ready")
        platform = bring_up(experiment.spec, deploy, self.run_dir)
        herrings = HerringThread(platform, self.run_dir, self.scenario.herrings)
        result: RunResult | None = None
        try:
            if self.options.trainee:
                self.actions = TraineeActions(platform, on_resolve=self._resolve)
            self._serve(platform)
            herrings.start()
            with self._lock:
                self._running = not self.resolved
            try:
                result = execute(experiment, self.run_dir, live_panel=False, platform=platform)
            except KeyboardInterrupt:
                if not self.resolved:
                    raise
                log.info("the run ended while it was finishing; scoring it again")
            finally:
                with self._lock:
                    self._running = False
                herrings.stop()
                if self.actions is not None:
                    self.actions.close()
        finally:
            tear_down(platform)
            deploy.close()
            if self.hand is not None:
                self.hand.join()
        record = DrillRecord(
            run_dir=self.run_dir,
            loaded=self.loaded,
            scenario=self.scenario,
            trainee=self.options.trainee,
            baseline=self.options.baseline,
            actions=self.actions.snapshot() if self.actions is not None else [],
            hand_injected=self.hand.injected if self.hand is not None else [],
            herrings=herrings.done,
            resolved=self.resolved,
        )
        drill = build_drill(record, result)
        write_drill_json(self.run_dir, drill)
        write_debrief(self.run_dir, drill)
        if self.server is not None:
            self.server.stop()
        (self.run_dir / CONNECTION_FILE).unlink(missing_ok=True)  # nothing answers there now
        return drill
