"""An injected fault as the harness holds it: its state file, its reverter, its undo steps.

Why a separate module: every fault on every platform is reverted the same way, through one
:class:`ActiveFault`, whether it changed a local process (a state file and a detached
reverter that undo it even when the harness is SIGKILLed), a cluster object (a state file
of kind ``k8s``), or only something that dies with the harness anyway (a node of the local
platform, an exec stream into a pod: no state file, see :func:`in_process`).
:func:`revert_all` (called by the runner on every exit path) undoes whatever is still active.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.faults.state import FaultRecord, RecordKind, Target, new_record, revert_record
from harness.rundir import RunDir

log = logging.getLogger(__name__)


class ActiveFault:
    """An injected fault: its state file (if any), its reverter, and extra undo steps."""

    def __init__(
        self,
        record: FaultRecord | None,
        reverter: subprocess.Popen[bytes] | None,
        name: str = "",
    ) -> None:
        self.record = record
        self.reverter = reverter
        self.undo: list[Callable[[], None]] = []
        self.reverted = False
        self._name = name
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.record.id if self.record is not None else self._name

    @contextmanager
    def undone_on_error(self) -> Iterator[ActiveFault]:
        """Revert the fault when the block raises (an injection that failed half-way, or
        was interrupted), then let the error go on."""
        try:
            yield self
        except BaseException:
            self.revert()
            raise

    def revert(self) -> list[int]:
        """Undo the fault (idempotent); returns the pids acted on."""
        with self._lock:
            if self.reverted:
                return []
            self.reverted = True
        for step in self.undo:
            try:
                step()
            except Exception:
                log.exception("an undo step of %s failed", self.id)
        pids = revert_record(self.record) if self.record is not None else []
        with _lock:
            _active.pop(self.id, None)
        if self.reverter is not None:
            try:
                self.reverter.wait(timeout=2.0)  # it sees the file gone within its poll
            except subprocess.TimeoutExpired:
                self.reverter.kill()
                self.reverter.wait()
        log.info("reverted %s (pids %s)", self.id, pids)
        return pids


_lock = threading.Lock()
_active: dict[str, ActiveFault] = {}
_serial = 0


def active_faults() -> list[ActiveFault]:
    with _lock:
        return list(_active.values())


def revert_all() -> int:
    """Revert every fault this process still holds; returns how many were reverted."""
    faults = active_faults()
    for fault in faults:
        try:
            fault.revert()
        except Exception:
            log.exception("reverting %s failed", fault.id)
    return len(faults)


def _start_reverter(path: Path, log_path: Path | None) -> subprocess.Popen[bytes]:
    out: Any = subprocess.DEVNULL
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "harness.faults.reverter", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the harness on purpose, and Ctrl-C
            close_fds=True,
        )
    finally:
        if out is not subprocess.DEVNULL:
            out.close()


def begin(
    kind: RecordKind,
    fault: str,
    target: str,
    targets: Iterable[Target],
    ttl_s: float,
    run_dir: Path | None = None,
    k8s: dict[str, str] | None = None,
    hook: dict[str, str] | None = None,
) -> ActiveFault:
    """Write the state file and start the reverter; call before the fault takes effect."""
    record = new_record(kind, fault, target, ttl_s, str(run_dir or ""))
    record.targets = list(targets)
    record.k8s = dict(k8s or {})
    record.hook = dict(hook or {})
    record.save()
    log_path = RunDir(run_dir).reverter_log if run_dir is not None else None
    active = ActiveFault(record, _start_reverter(record.path, log_path))
    with _lock:
        _active[record.id] = active
    return active


def in_process(fault: str, target: str, undo: Callable[[], None]) -> ActiveFault:
    """A fault whose effect cannot outlive the harness (a local node: its replicas are the
    harness's children; an exec stream into a pod: it closes with the harness, and the worker
    in the pod has its own time-to-live), so it needs no state file: only ``undo``."""
    global _serial
    with _lock:
        _serial += 1
        active = ActiveFault(None, None, name=f"{fault}-{target}-{_serial}")
        _active[active.id] = active
    active.undo.append(undo)
    return active


def guard(
    kubeconfig: str,
    context: str,
    fault: str,
    node: str,
    action: str,
    ttl_s: float,
    run_dir: Path | None = None,
    manifest: dict[str, Any] | None = None,
) -> ActiveFault:
    """Register a node fault for the reverter; call before the fault takes effect. Plain
    values only (the kubeconfig path and context), so the reverter and ``gpuchaos cleanup``
    can undo it without the platform."""
    info = {"kubeconfig": kubeconfig, "context": context, "node": node, "action": action}
    if manifest is not None:
        info["manifest"] = json.dumps(manifest)
    return begin("k8s", fault, node, [], ttl_s, run_dir, k8s=info)
