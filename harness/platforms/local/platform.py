"""The embedded local platform: virtual nodes, replicas as child processes, a router."""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.config import LocalPlatformSpec, WorkloadSpec
from harness.errors import PlatformError, WorkloadNotReady
from harness.faults.hookclient import TOKEN_ENV as FAULT_TOKEN_ENV
from harness.platforms.base import ReplicaInfo
from harness.platforms.local.autoscaler import Autoscaler
from harness.platforms.local.cluster import ClusterAutoscaler
from harness.platforms.local.devices import resolve_device
from harness.platforms.local.placement import Placement
from harness.platforms.local.probes import Liveness
from harness.platforms.local.process import (
    kill_all,
    last_lines,
    signal_process,
    spawn,
    terminate_all,
    usable_cpus,
)
from harness.platforms.local.replica import Replica
from harness.platforms.local.router import Router
from harness.platforms.local.supervisor import Supervisor
from harness.rundir import RunDir, replica_log_name
from harness.timeline import EventKind, Timeline

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STOP_GRACE_S = 5.0
_POLL_S = 0.05


class LocalPlatform(Placement):
    """Replicas as processes on virtual nodes, a supervisor and a router (see DESIGN.md)."""

    kind = "local"
    #: the supervisor's class (a subclass may vet each launch: tenancy's admission policy)
    supervisor_class: type[Supervisor] = Supervisor

    def __init__(
        self,
        spec: LocalPlatformSpec,
        workload: WorkloadSpec,
        timeline: Timeline,
        log_dir: Path,
    ) -> None:
        self.spec = spec
        self.workload = workload
        self.timeline = timeline
        self.log_dir = Path(log_dir)
        self._node_names = spec.all_node_names()
        self._node_cpus = {n.name: usable_cpus(n.cpus) for n in spec.nodes}
        self._node_devices = {n.name: resolve_device(n.device) for n in spec.nodes}
        capacity = {n.name: n.capacity for n in spec.nodes}
        absent = self._lay_out_pools(spec, capacity)
        replicas = []
        for node in spec.nodes:
            for i in range(node.replicas):
                replicas.append(
                    Replica(f"{node.name}-{i}", node.name, self._node_devices[node.name])
                )
        #: the replicas as deployed, {id: node}: what a game day's reset puts back
        self._declared = {r.id: r.node for r in replicas}
        live = spec.liveness
        # the router reports through self.timeline, whichever run it belongs to now
        self._router = Router(
            HOST,
            spec.outlier_ejection,
            lambda kind, rid, details: self.timeline.emit(kind, rid, details),
        )
        self._supervisor = self.supervisor_class(
            replicas,
            self._node_names,
            self._launch,
            timeline,
            self._router.set_backends,
            probe_interval_s=spec.probe_interval_s,
            restart_backoff_s=spec.restart_backoff_s,
            max_backoff_s=spec.max_backoff_s,
            capacity=capacity,
            devices=self._node_devices,
            liveness=(
                Liveness(live.period_s, live.timeout_s, live.failure_threshold) if live else None
            ),
            absent=absent,
        )
        self._autoscaler: Autoscaler | None = None
        self._cluster: ClusterAutoscaler | None = None
        self._retiring: list[threading.Thread] = []
        self._cordoned: dict[str, int] = {}  # cordoned node -> its capacity before
        self._started = False
        self._stopped = False
        self._fault_tokens: dict[str, str] = {}  # replica id -> its fault hook's token

    # -- Platform protocol ------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self._router.port}"

    def start(self) -> None:
        """Start router and replicas; wait until all are Ready or raise WorkloadNotReady."""
        if self._started:
            raise PlatformError("local platform already started")
        self._started = True
        atexit.register(self.stop)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._router.start()
        self._supervisor.start()
        timeout = self.workload.ready_timeout_s
        deadline = time.monotonic() + timeout
        while True:
            problem = self._startup_problem()
            if problem is None:
                log.info("local platform ready at %s", self.endpoint)
                if self.spec.autoscaler is not None:
                    self._autoscaler = Autoscaler(
                        self, self.spec.autoscaler, self.timeline, self._requests_path
                    )
                    self._autoscaler.start()
                if self.spec.cluster_autoscaler is not None:
                    self._cluster = ClusterAutoscaler(
                        self, self.spec.pools, self.spec.cluster_autoscaler, self.timeline
                    )
                    self._cluster.start()
                return
            if problem or time.monotonic() >= deadline:
                replica_id = problem or self._first_unready()
                self.stop()
                raise WorkloadNotReady(self._not_ready_message(replica_id, timeout, bool(problem)))
            time.sleep(_POLL_S)

    def stop(self) -> None:
        """Tear everything down; idempotent; leaves no child process."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self._autoscaler is not None:
            self._autoscaler.stop()
        if self._cluster is not None:
            self._cluster.stop()
        procs = self._supervisor.begin_stop()
        terminate_all(procs, STOP_GRACE_S)
        self._supervisor.join()
        for t in self._retiring:
            t.join(timeout=STOP_GRACE_S + 6.0)
        self._router.stop()
        log.info("local platform stopped")

    def attach(self, timeline: Timeline, run_dir: Path) -> None:
        """Report to ``timeline`` and log replicas started from now on under ``run_dir``'s
        logs (a game day hands the deployment from run to run). A replica that keeps running
        keeps writing to the log it started with."""
        self.timeline = timeline
        self.log_dir = RunDir(run_dir).logs
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._supervisor.attach(timeline)
        if self._autoscaler is not None:
            self._autoscaler.timeline = timeline
        if self._cluster is not None:
            self._cluster.timeline = timeline

    def restore(self) -> list[str]:
        """Put the deployment back as it was deployed (a game day's reset, after every
        fault was reverted): every node up, the replicas the autoscaler added removed and
        those it removed back, its cooldown forgotten, the router's ejections cleared.
        Returns what it did, one phrase each; waiting for Ready is the caller's."""
        done: list[str] = []
        for node in self._node_names:
            if not self.node_is_up(node):
                self.node_up(node)
                done.append(f"node {node} up")
        with self._supervisor.lock:
            extra = [rid for rid in self._supervisor.replicas if rid not in self._declared]
        for rid in extra:
            self.remove_replica(rid)
            done.append(f"removed {rid}")
        for rid in self._supervisor.restore_replicas(self._declared):
            done.append(f"restored {rid}")
        if self._autoscaler is not None:
            self._autoscaler.reset()
        ejected = self._router.clear_ejections()
        if ejected:
            done.append(f"cleared {ejected} ejection(s)")
        for node in list(self._cordoned):
            self.cordon(node, False)
            done.append(f"uncordoned {node}")
        for rid in sorted(self._router.held_out):
            self.eject(rid, False)
            done.append(f"{rid} back in the router")
        return done

    def cordon(self, node: str, cordoned: bool = True) -> bool:
        """Mark ``node`` unschedulable (no new replica is placed there; its replicas keep
        running and restart in place) or schedulable again; False when it already was.
        Why through the capacity: the scheduler and the autoscaler place replicas only
        on nodes with room, so a node of capacity 0 takes none."""
        self._check_node(node)
        with self._supervisor.lock:
            if cordoned == (node in self._cordoned):
                return False
            capacity = self._supervisor.capacity
            if cordoned:
                self._cordoned[node], capacity[node] = capacity.get(node, 0), 0
            else:
                capacity[node] = self._cordoned.pop(node)
        if not cordoned:
            self._reschedule(f"node {node} uncordoned")
        return True

    def cordoned(self) -> list[str]:
        return sorted(self._cordoned)

    def eject(self, replica_id: str, out: bool = True) -> None:
        """Take a replica out of the router by hand (``out=False``: let it back), as
        on-call ejects a bad pod; it keeps running. Reported as the router's ejections are."""
        self.replica_node(replica_id)  # an unknown replica is a PlatformError
        self._router.hold_out(replica_id, out)
        kind: EventKind = "replica_ejected" if out else "replica_returned"
        self.timeline.emit(kind, replica_id, {"by_hand": True})

    def replicas(self) -> list[ReplicaInfo]:
        return self._supervisor.snapshot()

    def node_down(self, node: str) -> list[int]:
        """Kill every replica on ``node`` at once and keep it down; returns the killed pids.

        The node's replicas are then rescheduled onto up nodes with room (``max_replicas``);
        those that find none wait for the node to come back.
        """
        self._check_node(node)

        def kill(procs: list[subprocess.Popen[bytes]]) -> None:
            for proc in procs:
                signal_process(proc, signal.SIGKILL)

        taken = self._supervisor.take_node_down(node, kill)
        procs = [proc for _, proc in taken]
        pids = [proc.pid for proc in procs]
        self.timeline.emit("node_down", node, {"pids": pids})
        kill_all(procs)  # already signalled; this reaps
        for replica, proc in taken:
            self.timeline.emit(
                "replica_exit",
                replica.id,
                {"pid": proc.pid, "returncode": proc.returncode, "reason": "node_down"},
            )
        self._reschedule(f"node {node} down")
        log.info("node %s down, killed pids %s", node, pids)
        return pids

    def node_up(self, node: str) -> None:
        """Bring ``node`` back and start the replicas waiting for it; no-op when it is up."""
        self._check_node(node)
        if self._supervisor.bring_node_up(node):
            self.timeline.emit("node_up", node, {})
            log.info("node %s up", node)
            self._reschedule(f"node {node} up")

    def _requests_path(self) -> Path:
        """The run's request records (what the p99 latency rule reads)."""
        return RunDir(self.log_dir.parent).requests

    def remove_replica(self, replica_id: str) -> None:
        """Scale down: take a replica out of the router now, then stop it gracefully
        (SIGTERM lets in-flight requests finish) in the background."""
        proc = self._supervisor.remove_replica(replica_id)
        if proc is None:
            return
        self.timeline.emit("replica_exit", replica_id, {"pid": proc.pid, "reason": "scale_down"})
        t = threading.Thread(
            target=terminate_all, args=([proc], STOP_GRACE_S), name="gpuchaos-retire", daemon=True
        )
        t.start()
        self._retiring.append(t)

    def replica_port(self, replica_id: str) -> int | None:
        with self._supervisor.lock:
            r = self._supervisor.replicas.get(replica_id)
            return r.port if r is not None else None

    # -- helpers for tests and fault injectors --------------------------------------------

    def replica_pids(self, node: str | None = None) -> dict[str, int]:
        """Pids of the running replicas, optionally of one node only."""
        if node is not None:
            self._check_node(node)
        return {
            r.id: r.pid
            for r in self.replicas()
            if r.pid is not None and (node is None or r.node == node)
        }

    def replica_node(self, replica_id: str) -> str:
        with self._supervisor.lock:
            r = self._supervisor.replicas.get(replica_id)
            if r is None:
                known = ", ".join(self._supervisor.replicas)
                raise PlatformError(f"unknown replica {replica_id!r}; known replicas: {known}")
            return r.node

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every replica of every up-node is Ready; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._supervisor.lock:
                up = self._supervisor.node_up
                ready = all(
                    r.state == "ready"
                    for r in self._supervisor.replicas.values()
                    if up.get(r.node, False)
                )
            if ready:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)

    def kill_replica(self, replica_id: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to a replica's process as an outside fault would; returns its pid."""
        with self._supervisor.lock:
            replica = self._supervisor.replicas.get(replica_id)
            if replica is None:
                known = ", ".join(self._supervisor.replicas)
                raise PlatformError(f"unknown replica {replica_id!r}; known replicas: {known}")
            proc = replica.proc
        if proc is None or not signal_process(proc, sig):
            raise PlatformError(f"replica {replica_id} has no running process")
        self._supervisor.wake()
        return proc.pid

    def fault_token(self, replica_id: str) -> str | None:
        """The token of the replica's fault hook (given at its latest start); None when it
        was never started."""
        with self._supervisor.lock:
            return self._fault_tokens.get(replica_id)

    def set_gpu_healthy(self, node: str, healthy: bool, xid: int | None = None) -> bool:
        """Mark the GPU of ``node`` unhealthy (its replicas keep running, but none starts
        there: one due to start goes to a node with room, else waits, as the device plugin
        and the scheduler do after an XID) or healthy again; False when it already was so.
        Reported as ``gpu_unhealthy`` (with the ``xid`` it stands for) / ``gpu_healthy``."""
        self._check_node(node)
        if not self._supervisor.set_gpu_healthy(node, healthy):
            return False
        details = {} if xid is None else {"xid": xid}
        self.timeline.emit("gpu_healthy" if healthy else "gpu_unhealthy", node, details)
        log.info("GPU of node %s %s", node, "healthy again" if healthy else "unhealthy")
        return True

    def gpu_healthy(self, node: str) -> bool:
        self._check_node(node)
        with self._supervisor.lock:
            return node not in self._supervisor.gpu_unhealthy

    def log_path(self, replica_id: str) -> Path:
        return self.log_dir / replica_log_name(replica_id)

    # -- internals ----------------------------------------------------------------------

    def _launch(self, replica: Replica, port: int) -> subprocess.Popen[bytes]:
        """Spawn one replica process (called from the supervisor thread)."""
        w = self.workload
        argv = [
            sys.executable,
            "-m",
            w.module,
            "--host", HOST,
            "--port", str(port),
            "--device", replica.device,
            "--replica-id", replica.id,
            "--threads", str(self.spec.torch_threads),
            *w.server_args(),  # model, batching, queue, timeouts, memory model, extra_args
            *self._replica_args(replica),
        ]  # fmt: skip
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self._replica_env(replica))
        # a fresh secret per start: the replica's fault hook answers only to the harness
        token = env[FAULT_TOKEN_ENV] = secrets.token_urlsafe(24)
        with self._supervisor.lock:
            self._fault_tokens[replica.id] = token
        if replica.device == "cpu":
            env["OMP_NUM_THREADS"] = str(self.spec.torch_threads)
        header = f"=== gpuchaos {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}"
        cpus = self._node_cpus[replica.node]
        return spawn(argv, env, self.log_path(replica.id), header, cpus=cpus)

    def _replica_args(self, replica: Replica) -> list[str]:
        """Server flags of one replica beyond the workload's (a tenant's memory cap); a
        flag given again here wins (argparse keeps the last)."""
        return []

    def _replica_env(self, replica: Replica) -> dict[str, str]:
        """Environment of one replica beyond the harness's (a tenant's MIG slice)."""
        return {}

    def _check_node(self, node: str) -> None:
        if node not in self._node_names:
            known = ", ".join(self._node_names)
            raise PlatformError(f"unknown node {node!r}; known nodes: {known}")

    def _startup_problem(self) -> str | None:
        """None when all replicas are Ready, a replica id when one exited, else ''."""
        with self._supervisor.lock:
            replicas = list(self._supervisor.replicas.values())
            for r in replicas:
                if r.crashes:
                    return r.id
            return None if all(r.state == "ready" for r in replicas) else ""

    def _first_unready(self) -> str:
        for r in self.replicas():
            if r.state != "ready":
                return r.id
        return ""

    def _not_ready_message(self, replica_id: str, timeout: float, exited: bool) -> str:
        with self._supervisor.lock:
            replica = self._supervisor.replicas.get(replica_id)
            returncode = replica.last_returncode if replica else None
        if exited:
            what = f"replica {replica_id} exited with code {returncode} before it was Ready"
        else:
            what = f"replica {replica_id} was not Ready within {timeout:g} s"
        tail = [
            line for line in last_lines(self.log_path(replica_id), 3) if not line.startswith("===")
        ]
        log_text = " | ".join(tail) if tail else "(empty)"
        return f"{what}; log {self.log_path(replica_id)}: {log_text}"
