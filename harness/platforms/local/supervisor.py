"""The supervisor of the local platform (like a kubelet plus a scheduler).

It owns the replica records and the one lock that guards them, spawns every replica from
its own thread (so PR_SET_PDEATHSIG ties the children to a thread that lives as long as
the platform), restarts crashed replicas with back-off, probes readiness, kills and
restarts replicas whose liveness probe keeps failing (a hung process), starts the replicas
:mod:`~harness.platforms.local.placement` placed, and publishes the Ready set to the
router. The record of one replica is :mod:`~harness.platforms.local.replica`; the HTTP
probes it sends are :mod:`~harness.platforms.local.probes`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.platforms.base import ReplicaInfo
from harness.platforms.local.probes import LIVE_PATH, PROBE_TIMEOUT_S, Liveness, probe_ready
from harness.platforms.local.process import free_port, kill_all
from harness.platforms.local.replica import Replica
from harness.timeline import EventKind, Timeline

log = logging.getLogger(__name__)

UNREADY_AFTER_FAILURES = 2  # consecutive failed probes before a Ready replica is Unready
BACKOFF_RESET_S = 30.0  # Ready this long resets the crash back-off

Launcher = Callable[["Replica", int], "subprocess.Popen[bytes]"]
Event = tuple[EventKind, str, dict[str, Any]]


class Supervisor:
    """Keeps the replicas of up-nodes running and tracks their readiness."""

    def __init__(
        self,
        replicas: Iterable[Replica],
        nodes: Iterable[str],
        launch: Launcher,
        timeline: Timeline,
        publish: Callable[[Mapping[str, int]], None],
        probe_interval_s: float,
        restart_backoff_s: float,
        max_backoff_s: float,
        capacity: Mapping[str, int] | None = None,
        devices: Mapping[str, str] | None = None,
        liveness: Liveness | None = None,
        absent: Iterable[str] = (),
    ) -> None:
        self.lock = threading.Lock()
        self.replicas: dict[str, Replica] = {r.id: r for r in replicas}
        self.node_up: dict[str, bool] = dict.fromkeys(nodes, True)
        #: pool nodes not provisioned: down, and no fault's node_up brings them back
        self.absent: set[str] = set(absent)
        self.node_up.update(dict.fromkeys(self.absent, False))
        #: most replicas a node may run (its GPU capacity); a lost node's replicas move
        #: only to nodes below it
        self.capacity: dict[str, int] = dict(capacity or {})
        self.devices: dict[str, str] = dict(devices or {})
        #: nodes whose GPU is unhealthy (lost under running replicas, ``lose_gpu``): up, but
        #: no replica starts there; one due to start moves to a node with room, else waits
        self.gpu_unhealthy: set[str] = set()
        self.liveness = liveness
        self._launch = launch
        self._timeline = timeline
        self._publish_fn = publish
        self._probe_interval_s = probe_interval_s
        self._restart_backoff_s = restart_backoff_s
        self._max_backoff_s = max_backoff_s
        self._stopping = False
        self._published: dict[str, int] | None = None
        self._wake = threading.Event()
        self._exit = threading.Event()
        self._thread: threading.Thread | None = None
        self._probes = ThreadPoolExecutor(max_workers=32, thread_name_prefix="gpuchaos-probe")

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor thread and schedule every replica of every up-node."""
        with self.lock:
            now = time.monotonic()
            for r in self.replicas.values():
                if self.node_up.get(r.node, False):
                    self.schedule_locked(r, now)
        self._thread = threading.Thread(target=self._run, name="gpuchaos-supervisor", daemon=True)
        self._thread.start()

    def begin_stop(self) -> list[subprocess.Popen[bytes]]:
        """Stop supervising (no more restarts); returns the running processes to tear down."""
        with self.lock:
            self._stopping = True
            procs = []
            for r in self.replicas.values():
                if r.proc is not None:
                    procs.append(r.proc)
                r.proc, r.port, r.next_start_at, r.ready_since = None, None, None, None
                r.state = "exited"
            self._publish_locked()
        return procs

    def join(self, timeout: float = 10.0) -> None:
        """End the supervisor thread (after the children it spawned were reaped)."""
        self._exit.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._probes.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def attach(self, timeline: Timeline) -> None:
        """Emit to ``timeline`` from now on (a game day's next run)."""
        self._timeline = timeline

    def restore_replicas(self, declared: Mapping[str, str]) -> list[str]:
        """Schedule the declared replicas ({replica id: node}) that are gone (an autoscaler
        scaled them down), as a game day's reset does; returns their ids."""
        added: list[str] = []
        with self.lock:
            if self._stopping:
                return added
            now = time.monotonic()
            for rid, node in declared.items():
                if rid not in self.replicas:
                    r = Replica(rid, node, self.devices.get(node, "cpu"))
                    self.schedule_locked(r, now)
                    self.replicas[rid] = r
                    added.append(rid)
        if added:
            self._wake.set()
        return added

    # -- node and replica control (called from the caller's thread) ----------------------

    def take_node_down(
        self,
        node: str,
        kill: Callable[[list[subprocess.Popen[bytes]]], None] | None = None,
    ) -> list[tuple[Replica, subprocess.Popen[bytes]]]:
        """Mark ``node`` down and detach its processes; the caller reaps them, then calls
        :meth:`reschedule`.

        ``kill`` is called with the processes before the router learns that the node is
        gone, as when a real node dies: requests in flight on it are cut, and a request
        routed there meanwhile meets a refused connection (which the router retries
        elsewhere), rather than the router quietly draining the node first."""
        with self.lock:
            if not self.node_up[node]:
                return []
            self.node_up[node] = False
            taken = []
            for r in self.replicas.values():
                if r.node != node:
                    continue
                if r.proc is not None:
                    taken.append((r, r.proc))
                r.proc, r.port, r.next_start_at, r.ready_since = None, None, None, None
                r.state = "down"
            if kill is not None:
                kill([proc for _, proc in taken])
            self._publish_locked()
        return taken

    def assigned(self, node: str) -> int:
        """Replicas placed on ``node`` (running, starting or waiting for it); under lock."""
        return sum(1 for r in self.replicas.values() if r.node == node)

    def room(self, node: str) -> int:
        """How many more replicas ``node`` can take; under lock."""
        if not self.node_up.get(node, False) or node in self.gpu_unhealthy:
            return 0
        return max(0, self.capacity.get(node, 0) - self.assigned(node))

    def set_gpu_healthy(self, node: str, healthy: bool) -> bool:
        """Mark the GPU of ``node`` healthy or not; False when it already was so."""
        with self.lock:
            if healthy == (node not in self.gpu_unhealthy):
                return False
            (self.gpu_unhealthy.discard if healthy else self.gpu_unhealthy.add)(node)
        self._wake.set()
        return True

    def bring_node_up(self, node: str) -> bool:
        """Mark ``node`` up and schedule the replicas waiting for it; False when it already
        was up, or is a pool node not provisioned."""
        with self.lock:
            if self.node_up[node] or self._stopping or node in self.absent:
                return False
            self.node_up[node] = True
            now = time.monotonic()
            for r in self.replicas.values():
                if r.node == node:
                    r.consecutive_crashes = 0
                    self.schedule_locked(r, now)
        self._wake.set()
        return True

    def add_replica(self, node: str) -> Replica | None:
        """A new replica on ``node`` (the autoscaler's scale-up); None when it has no room."""
        with self.lock:
            if self._stopping or self.room(node) <= 0:
                return None
            taken = {r.id for r in self.replicas.values()}
            i = 0
            while f"{node}-{i}" in taken:
                i += 1
            r = Replica(f"{node}-{i}", node, self.devices.get(node, "cpu"), autoscaled=True)
            self.schedule_locked(r, time.monotonic())
            self.replicas[r.id] = r
        self._wake.set()
        return r

    def remove_replica(self, replica_id: str) -> subprocess.Popen[bytes] | None:
        """Forget a replica (scale-down): it leaves the router at once; returns its process
        for the caller to terminate."""
        with self.lock:
            r = self.replicas.pop(replica_id, None)
            if r is None:
                return None
            proc = r.proc
            r.proc, r.port, r.next_start_at, r.ready_since = None, None, None, None
            r.state = "exited"
            self._publish_locked()
        return proc

    def snapshot(self) -> list[ReplicaInfo]:
        with self.lock:
            return [r.info() for r in self.replicas.values()]

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._exit.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("supervisor tick failed")
            self._wake.wait(self._probe_interval_s)
            self._wake.clear()

    def _tick(self) -> None:
        events: list[Event] = []
        to_start: list[Replica] = []
        to_probe: list[tuple[Replica, subprocess.Popen[bytes], int]] = []
        to_live: list[tuple[Replica, subprocess.Popen[bytes], int]] = []
        now = time.monotonic()
        with self.lock:
            if self._stopping:
                return
            for r in self.replicas.values():
                if r.proc is not None:
                    returncode = r.proc.poll()
                    if returncode is None:
                        assert r.port is not None
                        to_probe.append((r, r.proc, r.port))
                        live = self.liveness
                        if (
                            live is not None
                            and r.ever_ready
                            and r.kill_reason is None
                            and now - r.last_live_probe >= live.period_s
                        ):
                            r.last_live_probe = now
                            to_live.append((r, r.proc, r.port))
                    else:
                        events.append(self._crashed_locked(r, r.proc.pid, returncode, now))
                elif (
                    r.next_start_at is not None
                    and r.next_start_at <= now
                    and r.node in self.gpu_unhealthy
                ):
                    event = self._off_unhealthy_gpu_locked(r, now)
                    if event is not None:
                        events.append(event)
                elif (
                    r.next_start_at is not None
                    and r.next_start_at <= now
                    and self.node_up.get(r.node, False)
                ):
                    r.next_start_at = None  # claimed by this tick
                    to_start.append(r)
            self._publish_locked()
        self._emit(events)
        for r in to_start:
            self._start_replica(r)
        if to_probe:
            self._probe(to_probe, to_live)

    def _crashed_locked(
        self, r: Replica, pid: int | None, returncode: int | None, now: float
    ) -> Event:
        r.proc, r.port, r.ready_since = None, None, None
        r.last_returncode = returncode
        reason, r.kill_reason = r.kill_reason, None
        r.crashes += 1
        r.consecutive_crashes += 1
        delay = min(self._restart_backoff_s * 2 ** (r.consecutive_crashes - 1), self._max_backoff_s)
        r.state = "backoff"
        r.next_start_at = now + delay
        log.warning(
            "replica %s (pid %s) exited with %s; restart in %.2f s", r.id, pid, returncode, delay
        )
        details: dict[str, Any] = {"pid": pid, "returncode": returncode, "restarts": r.restarts}
        if reason is not None:
            details["reason"] = reason
        return ("replica_exit", r.id, details)

    def _off_unhealthy_gpu_locked(self, r: Replica, now: float) -> Event | None:
        """A replica due to start where the GPU is unhealthy goes to the node with most room,
        as a scheduler does once the device plugin marks the GPU unhealthy, else it waits."""
        reason = f"GPU of {r.node} unhealthy"
        candidates = [n for n in self.node_up if self.room(n) > 0]
        if not candidates:
            if r.state == "pending":
                return None
            r.state = "pending"
            return ("scale", "scheduler", {"reason": reason, "pending": [r.id]})
        to = max(candidates, key=lambda n: (n == r.home, self.room(n)))
        r.node, r.device = to, self.devices.get(to, r.device)
        r.consecutive_crashes = 0
        self.schedule_locked(r, now)
        log.info("replica %s: %s, placed on %s", r.id, reason, to)
        return ("scale", "scheduler", {"reason": reason, "rescheduled": {r.id: to}})

    def _start_replica(self, r: Replica) -> None:
        port = free_port()
        try:
            proc = self._launch(r, port)
        except OSError as exc:
            log.error("replica %s could not be spawned: %s", r.id, exc)
            with self.lock:
                if self._stopping or not self.node_up.get(r.node, False):
                    return
                event = self._crashed_locked(r, None, None, time.monotonic())
            event[2]["error"] = str(exc)
            self._emit([event])
            return
        with self.lock:
            orphan = self._stopping or not self.node_up.get(r.node, False) or r.proc is not None
            if not orphan:
                if r.state == "backoff":
                    r.restarts += 1
                r.proc, r.port, r.next_start_at = proc, port, None
                r.state = "starting"
                r.spawned_at = time.monotonic()
                r.probe_failures = 0
                r.ready_since = None
                r.ever_ready = False
                r.live_failures = 0
                r.kill_reason = None
        if orphan:  # the node went down or the platform stopped while spawning
            kill_all([proc])
            return
        log.info("replica %s started: pid %d, port %d", r.id, proc.pid, port)
        self._emit([("replica_start", r.id, {"pid": proc.pid, "port": port, "node": r.node})])

    def _probe(
        self,
        targets: list[tuple[Replica, subprocess.Popen[bytes], int]],
        live: list[tuple[Replica, subprocess.Popen[bytes], int]],
    ) -> None:
        futures = [self._probes.submit(probe_ready, port) for _, _, port in targets]
        live_timeout = self.liveness.timeout_s if self.liveness is not None else PROBE_TIMEOUT_S
        live_futures = [
            self._probes.submit(probe_ready, port, live_timeout, LIVE_PATH) for _, _, port in live
        ]
        results = [f.result() for f in futures]
        live_results = [f.result() for f in live_futures]
        events: list[Event] = []
        now = time.monotonic()
        with self.lock:
            if self._stopping:
                return
            for (r, proc, _), ok in zip(live, live_results, strict=True):
                if r.proc is not proc or self.liveness is None:
                    continue
                r.live_failures = 0 if ok else r.live_failures + 1
                if r.live_failures >= self.liveness.failure_threshold:
                    r.kill_reason = "liveness"
                    log.warning(
                        "replica %s (pid %d) failed %d liveness probes: killing it",
                        r.id, proc.pid, r.live_failures,
                    )  # fmt: skip
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    self._wake.set()
            for (r, proc, _), ok in zip(targets, results, strict=True):
                if r.proc is not proc:  # replaced or taken down meanwhile
                    continue
                if ok:
                    r.probe_failures = 0
                    if r.state in ("starting", "unready"):
                        r.state = "ready"
                        r.ready_since = now
                        r.ever_ready = True
                        startup_s = round(now - r.spawned_at, 3)
                        events.append(
                            (
                                "replica_ready",
                                r.id,
                                {"pid": proc.pid, "startup_s": startup_s, "node": r.node},
                            )
                        )
                    elif (
                        r.ready_since is not None
                        and r.consecutive_crashes
                        and now - r.ready_since >= BACKOFF_RESET_S
                    ):
                        r.consecutive_crashes = 0
                elif r.state == "ready":
                    r.probe_failures += 1
                    if r.probe_failures >= UNREADY_AFTER_FAILURES:
                        r.state = "unready"
                        r.ready_since = None
                        events.append(("replica_unready", r.id, {"pid": proc.pid}))
            self._publish_locked()
        self._emit(events)

    # -- helpers --------------------------------------------------------------------------

    def schedule_locked(self, r: Replica, now: float) -> None:
        """Start ``r`` on its node as soon as the loop runs; under lock."""
        r.state = "starting"
        r.next_start_at = now
        r.ready_since = None

    def _publish_locked(self) -> None:
        ready = {
            r.id: r.port
            for r in self.replicas.values()
            if r.state == "ready" and r.port is not None
        }
        if ready != self._published:
            self._published = ready
            self._publish_fn(ready)

    def _emit(self, events: list[Event]) -> None:
        for kind, target, details in events:
            self._timeline.emit(kind, target, details)
