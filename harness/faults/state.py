"""Fault state files: what is injected, how to undo it, until when, and who owns it.

One JSON file per injected fault in :func:`state_dir` (``$GPUCHAOS_STATE_DIR``, else
``$XDG_RUNTIME_DIR/gpuchaos``, else ``/tmp/gpuchaos-<uid>``). The file is written before the
fault takes effect and removed once it is reverted, so a file that outlives its owner (the
harness process) names exactly what is left to undo. :func:`revert_record` undoes one;
it is what the harness, the detached reverter and ``gpuchaos cleanup`` all call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.faults.procfs import same_process, start_time

log = logging.getLogger(__name__)

#: k8s: a cluster fault (cordon, node delete) undone through the API, see ``k8s`` below;
#: hook: a fault of a replica's fault hook (a throttle) undone by a ``clear``, see ``hook``.
RecordKind = Literal["stop", "rlimit", "process", "k8s", "hook"]


def state_dir() -> Path:
    """The folder of fault state files (created with mode 0700 when missing)."""
    env = os.environ.get("GPUCHAOS_STATE_DIR")
    if env:
        path = Path(env)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "gpuchaos"
    else:
        path = Path(tempfile.gettempdir()) / f"gpuchaos-{os.getuid()}"
    faults = path / "faults"
    faults.mkdir(parents=True, exist_ok=True, mode=0o700)
    return faults


@dataclass
class Target:
    """One process a fault acts on, with what is needed to undo the fault on it."""

    pid: int
    start: float | None  # process start time: a reused pid is never touched
    group: bool = False  # the signal went to the process group
    soft: int | None = None  # rlimit: the soft RLIMIT_AS before the fault (None: unlimited)


@dataclass
class FaultRecord:
    """An injected fault, as stored in its state file."""

    id: str
    kind: RecordKind  # stop: SIGCONT on revert; rlimit: restore soft limit; process: kill
    fault: str  # the action that injected it, e.g. "hang_replica"
    target: str  # the fault's target (replica or node)
    owner_pid: int
    owner_start: float | None
    created_at: float
    expires_at: float  # time-to-live: reverted by then even when the owner lives on
    targets: list[Target] = field(default_factory=list)
    run_dir: str = ""
    # kind k8s: what harness.platforms.kubernetes.ttl needs to undo it (kubeconfig, context,
    # node, action, saved manifest)
    k8s: dict[str, str] = field(default_factory=dict)
    # kind hook: the replica's fault hook (host, port, token; the token is a secret, kept in
    # the state folder, which is mode 0700)
    hook: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return state_dir() / f"{self.id}.json"

    def save(self) -> Path:
        path = self.path
        tmp = path.with_suffix(".tmp")
        # 0600 from the start: a hook fault's record holds the replica's fault-hook token
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(self)))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path) -> FaultRecord:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        raw["targets"] = [Target(**t) for t in raw.get("targets", [])]
        return cls(**raw)

    def owner_alive(self) -> bool:
        return same_process(self.owner_pid, self.owner_start)

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


def new_record(
    kind: RecordKind, fault: str, target: str, ttl_s: float, run_dir: str = ""
) -> FaultRecord:
    now = time.time()
    me = os.getpid()
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in target)
    return FaultRecord(
        id=f"{fault}-{safe}-{me}-{time.monotonic_ns()}",
        kind=kind,
        fault=fault,
        target=target,
        owner_pid=me,
        owner_start=start_time(me),
        created_at=now,
        expires_at=now + ttl_s,
        run_dir=run_dir,
    )


def _signal(t: Target, sig: int) -> bool:
    if not same_process(t.pid, t.start):
        return False
    try:
        if t.group:
            os.killpg(t.pid, sig)
        else:
            os.kill(t.pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(t.pid, sig)
    return True


def revert_target(kind: RecordKind, t: Target) -> bool:
    """Undo the fault on one process; False when the process is gone (nothing to undo)."""
    if kind == "stop":
        return _signal(t, signal.SIGCONT)
    if kind == "process":
        return _signal(t, signal.SIGKILL)
    if not same_process(t.pid, t.start):
        return False
    try:
        _, hard = resource.prlimit(t.pid, resource.RLIMIT_AS)
        soft = resource.RLIM_INFINITY if t.soft is None else t.soft
        if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > hard):
            soft = hard
        resource.prlimit(t.pid, resource.RLIMIT_AS, (soft, hard))
    except ProcessLookupError:
        return False
    return True


def revert_record(record: FaultRecord) -> list[int]:
    """Undo a fault on every process it still affects and delete its state file; returns
    the pids that were acted on. Errors on one process do not stop the others."""
    done: list[int] = []
    if record.kind == "k8s":
        from harness.faults.kube import revert_k8s

        try:
            revert_k8s(record.k8s)
        except Exception as exc:  # kept on disk: gpuchaos cleanup can try again
            log.error("reverting %s in the cluster failed: %s", record.id, exc)
            return done
    if record.kind == "hook":
        from harness.faults.hookclient import clear

        if clear(record.hook):
            done.extend(t.pid for t in record.targets)
        with contextlib.suppress(FileNotFoundError):
            record.path.unlink()
        return done
    for t in record.targets:
        try:
            if revert_target(record.kind, t):
                done.append(t.pid)
        except OSError as exc:
            log.error("reverting %s on pid %d failed: %s", record.id, t.pid, exc)
    with contextlib.suppress(FileNotFoundError):
        record.path.unlink()
    return done


def leftover_records(include_live: bool = False) -> list[FaultRecord]:
    """State files whose owner is dead (or all, with ``include_live``), oldest first."""
    out = []
    for path in sorted(state_dir().glob("*.json")):
        try:
            record = FaultRecord.load(path)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("unreadable fault state file %s (%s): removing it", path, exc)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        if include_live or not record.owner_alive():
            out.append(record)
    return sorted(out, key=lambda r: r.created_at)
