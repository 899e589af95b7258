"""One tenant's platform on a shared pool: a local platform built from the tenant's layout
view (:func:`harness.config.tenancy_layout.layout`), held to the tenant's contract.

Why a subclass of :class:`~harness.platforms.local.platform.LocalPlatform` per tenant: each
tenant keeps its own router (its endpoint), supervisor, autoscaler and replica ids
(``<tenant>-<node>-<i>``), so every existing local fault and the autoscaler work on a
tenant unchanged; the contract is added by overriding a few methods:

- priority: the niceness of each replica process (``NICENESS``: high 0, normal 5, low 10),
  set right after the spawn, before the server starts its threads (they inherit it);
- memory cap (mps, mig, exclusive; not time-slicing, where the device's memory is one
  pool): on CPU the stand-in is the soft ``RLIMIT_AS`` of the replica, set when it is Ready
  to its size then plus the cap (its ``replica_ready`` event says both); on CUDA the
  server's ``--memory-fraction cap/total`` (torch's per-process memory fraction), and with an
  MPS daemon running also the real per-client limit (``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``); under
  mig on a GPU in MIG mode the real slice (``CUDA_VISIBLE_DEVICES=MIG-<uuid>``, NVML's
  MIG devices in slice order), whose memory is its own;
- quota: a scale-up (the autoscaler's ``add_replica`` / ``add_pending_replica``) that
  would take the tenant past its replica quota is refused and recorded (``quota_refused``);
- admission: a launch the tenant's admission rule denies is recorded
  (``admission_denied``) and not started; the replica stays wanted (Pending) and is tried
  again with the crash back-off, as a ReplicaSet retries a pod a webhook rejected.

Every event the tenant's platform emits carries ``details["tenant"]`` (:class:`TenantTimeline`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config.tenancy import TenancySpec, TenantSpec
from harness.config.tenancy_layout import NICENESS, Slot, TenantLayout
from harness.errors import PlatformError
from harness.faults.injectors import cap_address_space
from harness.platforms.local.devices import MigDevice, mig_devices
from harness.platforms.local.platform import STOP_GRACE_S, LocalPlatform
from harness.platforms.local.process import terminate_all
from harness.platforms.local.replica import Replica
from harness.platforms.local.sharing_modes import mps_daemon_running, mps_env
from harness.platforms.local.supervisor import Supervisor
from harness.rundir import RunDir
from harness.telemetry.nvml import gpu_memory_mib
from harness.timeline import EventKind, Timeline

log = logging.getLogger(__name__)

#: Admission rules: deny replicas without a memory cap, or deny every new replica.
ADMISSION_RULES = ("memory-cap", "all")
#: How long :meth:`TenantPlatform.recreate_replica` waits for the new process.
RECREATE_WAIT_S = 30.0

#: (kind, target, details) -> None: sees (and may add to) an event before it is written
Annotate = Callable[[str, str, dict[str, Any]], None]


class TenantTimeline(Timeline):
    """A view of the run's timeline that adds ``details["tenant"]`` to every event it emits
    (and lets its platform annotate an event first); everything lands in the one file."""

    def __init__(self, parent: Timeline, tenant: str, annotate: Annotate | None = None) -> None:
        super().__init__(None)
        self.parent = parent
        self.tenant = tenant
        self.annotate = annotate
        self.events = parent.events  # the run's events, as the parent holds them

    def emit(
        self,
        kind: EventKind,
        target: str = "",
        details: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        merged = {**(details or {}), "tenant": self.tenant}
        if self.annotate is not None:
            try:
                self.annotate(kind, target, merged)
            except Exception:  # an annotation must never lose the event
                log.exception("annotating %s %s failed", kind, target)
        return self.parent.emit(kind, target, merged, at)

    def subscribe(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self.parent.subscribe(fn)

    def close(self) -> None:
        """The run closes the run's timeline; a view has nothing of its own to close."""


class TenantSupervisor(Supervisor):
    """The local supervisor with a vet before each launch (the tenant's admission rule)."""

    #: replica -> True to launch it; False: denied (the vet reports why)
    vet: Callable[[Replica], bool] | None = None

    def _start_replica(self, r: Replica) -> None:
        vet = self.vet
        if vet is not None and not vet(r):
            with self.lock:
                if self._stopping:
                    return
                r.consecutive_crashes += 1  # the back-off of a crash loop, without a crash
                n = min(r.consecutive_crashes - 1, 20)
                delay = min(self._restart_backoff_s * 2**n, self._max_backoff_s)
                r.state = "pending"
                r.next_start_at = time.monotonic() + delay
            return
        super()._start_replica(r)


class TenantPlatform(LocalPlatform):
    """A tenant's replicas on its view of the pool, held to its contract."""

    supervisor_class = TenantSupervisor

    def __init__(
        self,
        tenancy: TenancySpec,
        tenant: TenantSpec,
        view: TenantLayout,
        timeline: Timeline,
        run_dir: Path,
    ) -> None:
        self.tenant = tenant.name
        self.contract = tenant.contract
        self.sharing = tenancy.sharing
        self.gpu_memory_mib = tenancy.gpu_memory_mib
        self.view = view
        self.run_dir = Path(run_dir)
        self._quota = tenant.contract.replica_quota
        self.admission: str | None = None
        self._caps: dict[str, float] = {}  # replica id -> cap set by recreate_replica
        #: replica id -> the soft RLIMIT_AS (bytes) set on its latest process (CPU cap)
        self.address_limits: dict[str, int] = {}
        super().__init__(view.platform, tenant.workload, self._view(timeline), RunDir(run_dir).logs)
        assert isinstance(self._supervisor, TenantSupervisor)
        self._supervisor.vet = self._vet

    def _view(self, timeline: Timeline) -> TenantTimeline:
        return TenantTimeline(timeline, self.tenant, self._annotate)

    def attach(self, timeline: Timeline, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        super().attach(self._view(timeline), run_dir)

    def tenant_dir(self) -> Path:
        """Where the tenant's load writes (``run_dir/tenants/<name>``)."""
        return self.run_dir / "tenants" / self.tenant

    def _requests_path(self) -> Path:
        """The tenant's own records (what its p99 latency autoscaler rule reads)."""
        return RunDir(self.tenant_dir()).requests

    # -- where a replica runs, and its memory cap ------------------------------------------

    def slot_of(self, replica_id: str) -> Slot:
        """The slot (pool node, MIG slice) of the node the replica runs on now."""
        return self.view.slot(self.replica_node(replica_id))

    def memory_cap_mib(self, replica_id: str) -> float | None:
        """The replica's enforced memory cap, MiB; None under time-slicing (the device's
        memory is one pool: a cap is declared, not enforced)."""
        return self._cap_on(replica_id, self.replica_node(replica_id))

    def _cap_on(self, replica_id: str, node: str) -> float | None:
        if self.sharing == "time-slicing":
            return None
        if replica_id in self._caps:
            return self._caps[replica_id]
        return self.view.slot(node).memory_cap_mib

    def _declared_cap(self, replica_id: str) -> float | None:
        """The cap the replica declares (what an admission policy reads)."""
        return self._caps.get(replica_id, self.contract.memory_mib)

    # -- hooks of the local platform --------------------------------------------------------

    def _launch(self, replica: Replica, port: int) -> subprocess.Popen[bytes]:
        proc = super()._launch(replica, port)
        nice = NICENESS[self.contract.priority]
        with contextlib.suppress(OSError):  # never below the harness's own (no privilege)
            nice = max(nice, os.getpriority(os.PRIO_PROCESS, 0))
        try:
            os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
        except OSError as exc:
            log.warning("replica %s: niceness %d not set: %s", replica.id, nice, exc)
        return proc

    def _mig_slice(self, replica: Replica) -> MigDevice | None:
        """The real MIG device of the replica's slice when its GPU is in MIG mode with
        enough instances; None otherwise (virtual slices: cores and a memory fraction)."""
        if self.sharing != "mig" or not replica.device.startswith("cuda"):
            return None
        index = self.view.slot(replica.node).slice
        found = mig_devices(int(replica.device.partition(":")[2] or 0))
        return found[index] if index is not None and index < len(found) else None

    def _replica_env(self, replica: Replica) -> dict[str, str]:
        mig = self._mig_slice(replica)
        if mig is not None:
            return {"CUDA_VISIBLE_DEVICES": mig.cuda_visible_devices}
        if self.sharing == "mps":  # a real MPS daemon enforces the cap itself
            cap = self._cap_on(replica.id, replica.node)
            return mps_env(replica.device, cap, mps_daemon_running())
        return {}

    def _replica_args(self, replica: Replica) -> list[str]:
        if self._mig_slice(replica) is not None:  # the slice alone is visible, as cuda:0;
            return ["--device", "cuda:0"]  # its memory is the slice's: no fraction needed
        cap = self._cap_on(replica.id, replica.node)
        if cap is None or not replica.device.startswith("cuda"):
            return []
        memory = gpu_memory_mib(replica.device)
        total = memory[1] if memory is not None else self.gpu_memory_mib
        return ["--memory-fraction", f"{max(0.001, min(1.0, cap / total)):.4f}"]

    def _annotate(self, kind: str, target: str, details: dict[str, Any]) -> None:
        """A Ready replica on CPU gets its memory cap (its size now + the cap) as its soft
        RLIMIT_AS; the event says the cap and the limit."""
        node = details.get("node")
        if kind != "replica_ready" or not isinstance(details.get("pid"), int) or node is None:
            return
        cap = self._cap_on(target, str(node))
        if cap is None:
            return
        details["memory_cap_mib"] = cap
        if self._node_devices.get(str(node), "cpu").startswith("cuda"):
            return  # the server holds its fraction itself (--memory-fraction)
        try:
            limit = cap_address_space(details["pid"], cap)
        except (ProcessLookupError, PermissionError, OSError) as exc:
            log.warning("replica %s: memory cap not set: %s", target, exc)
            return
        if limit is not None:
            self.address_limits[target] = limit
            details["rlimit_as"] = limit

    # -- quota ------------------------------------------------------------------------------

    def quota(self) -> int:
        return self._quota

    def set_quota(self, quota: int | None) -> int:
        """Set the replica quota (None: the contract's); returns the one before. Under
        time-slicing and mps a node's room grows with the quota (each node can hold all of
        the tenant's replicas there)."""
        old = self._quota
        self._quota = self.contract.replica_quota if quota is None else quota
        if self.sharing in ("time-slicing", "mps"):
            with self._supervisor.lock:
                capacity = self._supervisor.capacity
                for node in capacity:
                    if node not in self._cordoned:
                        capacity[node] = max(capacity[node], self._quota)
        log.info("tenant %s: quota %d -> %d", self.tenant, old, self._quota)
        return old

    def _refused(self, reason: str) -> bool:
        """True (and ``quota_refused`` on the timeline) when one more replica would take the
        tenant past its quota."""
        count = self.replica_count()
        if count < self._quota:
            return False
        self.timeline.emit(
            "quota_refused",
            self.tenant,
            {"wanted": count + 1, "quota": self._quota, "replicas": count, "reason": reason},
        )
        log.info("tenant %s: %s refused by its quota (%d)", self.tenant, reason, self._quota)
        return True

    def node_room(self) -> dict[str, int]:
        """No room anywhere once the tenant is at its quota (the autoscaler then asks for a
        Pending replica, which the quota refuses: one refusal per scale-up)."""
        room = super().node_room()
        if self.replica_count() >= self._quota:
            return dict.fromkeys(room, 0)
        return room

    def add_replica(self, node: str) -> str | None:
        self._check_node(node)
        if self._refused(f"scale-up on {node}"):
            return None
        return super().add_replica(node)

    def add_pending_replica(self) -> str | None:
        if self._refused("scale-up"):
            return None
        return super().add_pending_replica()

    # -- admission --------------------------------------------------------------------------

    def set_admission(self, rule: str | None) -> None:
        if rule is not None and rule not in ADMISSION_RULES:
            raise PlatformError(
                f"unknown admission rule {rule!r}; rules: {', '.join(ADMISSION_RULES)}"
            )
        self.admission = rule

    def admission_reason(self, replica_id: str | None = None) -> str | None:
        """Why the rule denies a new replica (``replica_id``: a known one's restart), or None."""
        rule = self.admission
        if rule == "all":
            return "the admission rule 'all' denies every new replica"
        if rule == "memory-cap":
            cap = self.contract.memory_mib if replica_id is None else self._declared_cap(replica_id)
            if cap is None:
                return "no memory cap (contract.memory_mib unset)"
        return None

    def _vet(self, replica: Replica) -> bool:
        reason = self.admission_reason(replica.id)
        if reason is None:
            return True
        self.timeline.emit(
            "admission_denied", replica.id, {"rule": self.admission, "reason": reason}
        )
        log.info("tenant %s: replica %s denied: %s", self.tenant, replica.id, reason)
        return False

    # -- VPA-style recreate -----------------------------------------------------------------

    def recreate_replica(self, replica_id: str, memory_mib: float | None) -> tuple[int, int]:
        """Stop the replica gracefully and start it again (same id) with the memory cap
        ``memory_mib`` (None: its layout's); returns (old pid, new pid) once the new process
        runs (Ready comes later: a cold start under load)."""
        node = self.replica_node(replica_id)
        old_pid = self.replica_pids().get(replica_id)
        if old_pid is None:
            raise PlatformError(f"replica {replica_id} has no running process to recreate")
        proc = self._supervisor.remove_replica(replica_id)
        self.timeline.emit("replica_exit", replica_id, {"pid": old_pid, "reason": "recreate"})
        if proc is not None:
            terminate_all([proc], STOP_GRACE_S)
        if memory_mib is None:
            self._caps.pop(replica_id, None)
        else:
            self._caps[replica_id] = memory_mib
        self._supervisor.restore_replicas({replica_id: node})
        deadline = time.monotonic() + RECREATE_WAIT_S
        while (new_pid := self.replica_pids().get(replica_id)) is None:
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"replica {replica_id} was not started again within {RECREATE_WAIT_S:g} s "
                    f"of its recreate ({self.admission_reason(replica_id) or 'see its log'})"
                )
            time.sleep(0.05)
        self.timeline.emit(
            "replica_recreated",
            replica_id,
            {"memory_mib": memory_mib, "old_pid": old_pid, "new_pid": new_pid},
        )
        return old_pid, new_pid
