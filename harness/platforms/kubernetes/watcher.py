"""Pods, nodes and events of the cluster, read every ``poll_interval_s`` into the timeline.

Transitions become timeline events: a pod scheduled (``replica_start``), Ready
(``replica_ready``, with the rescheduling time when it replaces a pod that went away),
not Ready (``replica_unready``), gone, evicted or restarted (``replica_exit``); a GPU node
NotReady or cordoned (``node_down``) and back (``node_up``); the Deployment's replica count
changing (``scale``). Kubernetes Events of the namespace and of the nodes go to
``k8s_events.jsonl`` in the run folder. Times are when the change was seen (within one poll
interval); the condition's own ``lastTransitionTime`` is in the details.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.platforms.base import ReplicaInfo, ReplicaState
from harness.rundir import RunDir
from harness.timeline import Timeline

log = logging.getLogger(__name__)

#: Container waiting reasons that mean a replica is in back-off.
BACKOFF_REASONS = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"})


def _condition(obj: Any, kind: str) -> Any:
    for cond in (getattr(obj.status, "conditions", None) or []) if obj.status else []:
        if cond.type == kind:
            return cond
    return None


def _when(cond: Any) -> str | None:
    t = getattr(cond, "last_transition_time", None) if cond is not None else None
    return t.isoformat() if t is not None else None


def pod_ready(pod: Any) -> bool:
    cond = _condition(pod, "Ready")
    return bool(cond is not None and cond.status == "True" and not pod.metadata.deletion_timestamp)


def pod_restarts(pod: Any) -> int:
    statuses = (pod.status.container_statuses or []) if pod.status else []
    return sum(int(s.restart_count or 0) for s in statuses)


def pod_waiting_reason(pod: Any) -> str | None:
    statuses = (pod.status.container_statuses or []) if pod.status else []
    for s in statuses:
        waiting = s.state.waiting if s.state else None
        if waiting is not None and waiting.reason:
            return str(waiting.reason)
    return None


def node_ready(node: Any) -> bool:
    cond = _condition(node, "Ready")
    return bool(cond is not None and cond.status == "True")


@dataclass
class _PodSeen:
    name: str
    node: str | None
    scheduled: bool
    ready: bool
    restarts: int
    ever_ready: bool


class ClusterWatcher:
    """Polls the workload's pods, the GPU nodes and the events; keeps the latest snapshot."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        pod_selector: str,
        node_selector: str,
        deployment: str | None,
        timeline: Timeline,
        run_dir: Path | None,
        interval_s: float,
        device: str,
    ) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.namespace = namespace
        self.pod_selector = pod_selector
        self.node_selector = node_selector
        self.deployment = deployment
        self.timeline = timeline
        self.interval_s = interval_s
        self.device = device
        self._events_path = RunDir(run_dir).k8s_events if run_dir is not None else None
        self._events_fh: IO[str] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pods: dict[str, _PodSeen] = {}  # uid -> last seen
        self._pod_objs: list[Any] = []
        self._nodes: dict[str, tuple[bool, bool]] = {}  # name -> (ready, schedulable)
        self._gone: deque[tuple[float, str, str | None]] = deque()  # (time, pod, node)
        self._replicas: int | None = None
        self._seen_events: dict[str, int] = {}
        self._errors = 0

    # -- lifecycle -------------------------------------------------------------------------

    def prime(self) -> None:
        """Read the current state without emitting events (what was there before the run)."""
        self._poll(emit=False)

    def start(self) -> None:
        if self._events_path is not None:
            self._events_fh = open(self._events_path, "a", encoding="utf-8")  # noqa: SIM115
        self._thread = threading.Thread(target=self._loop, name="k8s-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10 * self.interval_s + 10)
        with self._lock:
            if self._events_fh is not None:
                self._events_fh.close()
                self._events_fh = None

    def attach(self, timeline: Timeline, run_dir: Path) -> None:
        """Emit to ``timeline`` and write cluster events to ``run_dir`` from now on (a game
        day's next run)."""
        with self._lock:
            self.timeline = timeline
            self._events_path = RunDir(run_dir).k8s_events
            if self._events_fh is not None:
                self._events_fh.close()
                self._events_fh = open(self._events_path, "a", encoding="utf-8")  # noqa: SIM115

    def poll_now(self) -> None:
        """One poll, now (used by actions that want a fresh snapshot)."""
        self._poll(emit=True)

    # -- snapshots -------------------------------------------------------------------------

    def replicas(self) -> list[ReplicaInfo]:
        with self._lock:
            pods = list(self._pod_objs)
        return [self._info(p) for p in pods]

    def node_names(self) -> list[str]:
        with self._lock:
            return sorted(self._nodes)

    def _info(self, pod: Any) -> ReplicaInfo:
        phase = pod.status.phase if pod.status else None
        state: ReplicaState
        if pod.metadata.deletion_timestamp or phase in ("Failed", "Succeeded"):
            state = "exited"
        elif pod_ready(pod):
            state = "ready"
        elif pod_waiting_reason(pod) in BACKOFF_REASONS:
            state = "backoff"
        else:
            seen = self._pods.get(pod.metadata.uid)
            state = "unready" if seen is not None and seen.ever_ready else "starting"
        return ReplicaInfo(
            id=pod.metadata.name,
            node=pod.spec.node_name or "",
            pid=None,
            port=None,
            state=state,
            restarts=pod_restarts(pod),
            device=self.device,
        )

    # -- polling ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._poll(emit=True)
                self._errors = 0
            except Exception as exc:  # the API may be briefly unreachable: keep watching
                self._errors += 1
                level = logging.WARNING if self._errors in (1, 10, 100) else logging.DEBUG
                log.log(level, "reading the cluster failed (%d in a row): %s", self._errors, exc)

    def _poll(self, emit: bool) -> None:
        now = time.time()
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.pod_selector)
        nodes = self.core.list_node(label_selector=self.node_selector)
        replicas = None
        if self.deployment is not None:
            with contextlib.suppress(Exception):
                dep = self.apps.read_namespaced_deployment(self.deployment, self.namespace)
                replicas = int(dep.spec.replicas or 0)
        with self._lock:
            self._pod_objs = list(pods.items)
            self._diff_pods(pods.items, now, emit)
            self._diff_nodes(nodes.items, emit)
            if replicas is not None:
                if emit and self._replicas is not None and replicas != self._replicas:
                    self.timeline.emit(
                        "scale", self.deployment or "", {"from": self._replicas, "to": replicas}
                    )
                self._replicas = replicas
        if emit:
            self._read_events()

    def _diff_pods(self, pods: list[Any], now: float, emit: bool) -> None:
        current: dict[str, Any] = {p.metadata.uid: p for p in pods}
        for uid, seen in list(self._pods.items()):
            pod = current.get(uid)
            if pod is None or pod.metadata.deletion_timestamp:
                del self._pods[uid]
                if emit:
                    self.timeline.emit(
                        "replica_exit", seen.name, {"node": seen.node, "reason": "pod_deleted"}
                    )
                    self._gone.append((now, seen.name, seen.node))
        for uid, pod in current.items():
            if pod.metadata.deletion_timestamp:
                continue
            name = pod.metadata.name
            node = pod.spec.node_name
            sched = _condition(pod, "PodScheduled")
            scheduled = bool(sched is not None and sched.status == "True" and node)
            ready = pod_ready(pod)
            restarts = pod_restarts(pod)
            known = self._pods.get(uid)
            if known is None:
                seen = _PodSeen(name, node, False, False, restarts, False)
                self._pods[uid] = seen
                if not emit:
                    seen.scheduled, seen.ready, seen.ever_ready = scheduled, ready, ready
                    continue
            else:
                seen = known
            if emit and scheduled and not seen.scheduled:
                self.timeline.emit(
                    "replica_start",
                    name,
                    {"node": node, "event": "scheduled", "condition_time": _when(sched)},
                )
            if emit and restarts > seen.restarts:
                self.timeline.emit(
                    "replica_exit",
                    name,
                    {"node": node, "reason": "container_restart", "restarts": restarts},
                )
            if emit and ready and not seen.ready:
                details: dict[str, Any] = {
                    "node": node,
                    "condition_time": _when(_condition(pod, "Ready")),
                }
                if not seen.ever_ready and self._gone:
                    gone_at, gone_pod, gone_node = self._gone.popleft()
                    details.update(
                        replaces=gone_pod,
                        from_node=gone_node,
                        rescheduled_after_s=round(now - gone_at, 3),
                    )
                self.timeline.emit("replica_ready", name, details)
            elif emit and seen.ready and not ready:
                self.timeline.emit("replica_unready", name, {"node": node})
            seen.node, seen.scheduled, seen.restarts = node, scheduled, restarts
            seen.ready = ready
            seen.ever_ready = seen.ever_ready or ready

    def _diff_nodes(self, nodes: list[Any], emit: bool) -> None:
        current = {n.metadata.name: n for n in nodes}
        for name, node in current.items():
            ready = node_ready(node)
            schedulable = not bool(node.spec.unschedulable) if node.spec else True
            before = self._nodes.get(name)
            self._nodes[name] = (ready, schedulable)
            if not emit or before is None:
                continue
            was_ready, was_schedulable = before
            if was_ready and not ready:
                cond = _condition(node, "Ready")
                self.timeline.emit(
                    "node_down",
                    name,
                    {
                        "reason": "NotReady",
                        "status": getattr(cond, "status", None),
                        "condition_time": _when(cond),
                    },
                )
            elif was_schedulable and not schedulable:
                self.timeline.emit("node_down", name, {"reason": "cordoned"})
            if not was_ready and ready:
                self.timeline.emit("node_up", name, {"reason": "Ready"})
            elif not was_schedulable and schedulable:
                self.timeline.emit("node_up", name, {"reason": "uncordoned"})
        for name in [n for n in self._nodes if n not in current]:
            del self._nodes[name]
            if emit:
                self.timeline.emit("node_down", name, {"reason": "node_deleted"})

    def _read_events(self) -> None:
        if self._events_fh is None:
            return
        batches = [self.core.list_namespaced_event(self.namespace).items]
        with contextlib.suppress(Exception):  # node events need cluster-wide read access
            batches.append(
                self.core.list_event_for_all_namespaces(
                    field_selector="involvedObject.kind=Node"
                ).items
            )
        for items in batches:
            for ev in items:
                uid = ev.metadata.uid or f"{ev.metadata.namespace}/{ev.metadata.name}"
                count = int(ev.count or 1)
                if self._seen_events.get(uid) == count:
                    continue
                self._seen_events[uid] = count
                obj = ev.involved_object
                last = ev.last_timestamp or ev.event_time or ev.first_timestamp
                row = {
                    "time": time.time(),
                    "event_time": last.isoformat() if last is not None else None,
                    "type": ev.type,
                    "reason": ev.reason,
                    "object": f"{obj.kind}/{obj.name}" if obj is not None else None,
                    "message": ev.message,
                    "count": count,
                }
                with self._lock:
                    if self._events_fh is not None:
                        self._events_fh.write(json.dumps(row, default=str) + "\n")
                        self._events_fh.flush()
