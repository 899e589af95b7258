"""What the trainee does during a drill: acknowledge, diagnose, mitigate, declare resolved.

Every action, accepted or refused, is recorded with its time, arguments and result, and
written to the run's timeline as a ``drill_action`` event (the trainee's half of the
debrief). Mitigations act on the real platform (:mod:`harness.platforms.local.mitigate`
and the platform's own ``cordon`` and ``eject``). A diagnosis is recorded and not judged
aloud: the debrief tells; several tries are allowed, each counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.drill.pack import DIAGNOSIS_IDS
from harness.errors import ConfigError, HarnessError

log = logging.getLogger(__name__)

#: The trainee's actions, in the order the page and ``gpuchaos drill act`` list them, with
#: the arguments each takes.
ACTIONS: dict[str, tuple[str, ...]] = {
    "ack": (),
    "diagnose": ("kind", "target"),
    "restart": ("replica",),
    "cordon": ("node",),
    "uncordon": ("node",),
    "drain": ("node",),
    "scale": ("node", "replicas"),
    "eject": ("replica",),
    "readmit": ("replica",),
    "resolve": (),
}
#: The actions that change the platform (time to mitigate is the first that worked).
MITIGATIONS = frozenset({"restart", "cordon", "uncordon", "drain", "scale", "eject", "readmit"})


@dataclass
class ActionRecord:
    """One action as the trainee sent it and what came of it."""

    time: float  # unix seconds
    action: str
    args: dict[str, Any]
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TraineeActions:
    """The actions of one drill on one platform; thread-safe (the page's requests come on
    the server's threads). ``on_resolve`` is called once, when the trainee declares the
    incident resolved."""

    def __init__(self, platform: Any, on_resolve: Callable[[], None] | None = None) -> None:
        self.platform = platform
        self.records: list[ActionRecord] = []
        self.closed = False
        self._on_resolve = on_resolve
        self._lock = threading.Lock()
        self._declared = {r.id for r in platform.replicas()}

    # -- what may be named --------------------------------------------------------------

    def nodes(self) -> list[str]:
        return list(self.platform.nodes())

    def replicas(self) -> list[str]:
        """The replicas now and those deployed (a diagnosis may name a replica gone since)."""
        return sorted({r.id for r in self.platform.replicas()} | self._declared)

    def _arg(self, body: dict[str, Any], name: str, choices: list[str]) -> str:
        value = str(body.get(name) or "").strip()
        if value not in choices:
            raise ConfigError(name, value or "(missing)", f"expected one of {', '.join(choices)}")
        return value

    # -- acting -------------------------------------------------------------------------

    def act(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Do ``action`` with ``body``'s arguments; record it either way. Returns the answer
        for the page (``message`` one line); a refused action raises a HarnessError after
        it was recorded."""
        if action not in ACTIONS:
            raise ConfigError("action", action, f"expected one of {', '.join(ACTIONS)}")
        args = {k: body[k] for k in ACTIONS[action] if k in body}
        now = time.time()
        try:
            if self.closed:
                raise ConfigError("action", action, "the drill is over")
            result = self._do(action, body)
        except HarnessError as exc:
            self._record(ActionRecord(now, action, args, False, error=str(exc)))
            raise
        self._record(ActionRecord(now, action, args, True, result=result))
        if action == "resolve":
            self.closed = True
            if self._on_resolve is not None:
                self._on_resolve()
        message = result.pop("message", f"{action}: done")
        return {"ok": True, "action": action, "message": message, "result": result}

    def _record(self, rec: ActionRecord) -> None:
        with self._lock:
            self.records.append(rec)
        details = {"action": rec.action, "args": rec.args, "ok": rec.ok}
        details["result" if rec.ok else "error"] = rec.result if rec.ok else rec.error
        self.platform.timeline.emit("drill_action", "trainee", details, at=rec.time)

    def _do(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        from harness.platforms.local import mitigate

        p = self.platform
        if action == "ack":
            first = not any(r.action == "ack" and r.ok for r in self.records)
            return {"message": "acknowledged" if first else "acknowledged again", "first": first}
        if action == "diagnose":
            kind = self._arg(body, "kind", sorted(DIAGNOSIS_IDS.values()))
            target = self._arg(body, "target", self.nodes() + self.replicas())
            return {
                "message": f"diagnosis recorded: {kind} on {target}",
                "kind": kind,
                "target": target,
            }
        if action == "resolve":
            return {"message": "declared resolved: the drill ends, the debrief follows"}
        if action in ("restart", "eject", "readmit"):
            replica = self._arg(body, "replica", sorted(r.id for r in p.replicas()))
            if action == "restart":
                out = mitigate.restart_replica(p, replica)
                return {"message": f"restarted {replica} (killed pid {out['killed_pid']})", **out}
            p.eject(replica, action == "eject")
            verb = "ejected from" if action == "eject" else "readmitted to"
            return {"message": f"{replica} {verb} the router", "replica": replica}
        node = self._arg(body, "node", self.nodes())
        if action in ("cordon", "uncordon"):
            changed = p.cordon(node, action == "cordon")
            note = "" if changed else " (it already was)"
            return {"message": f"{node} {action}ed{note}", "node": node, "changed": changed}
        if action == "drain":
            out = mitigate.drain_node(p, node)
            moved = ", ".join(f"{a} -> {b}" for a, b in out["moved"].items()) or "nothing"
            stayed = f"; no room for {', '.join(out['stayed'])}" if out["stayed"] else ""
            return {"message": f"{node} cordoned and drained: moved {moved}{stayed}", **out}
        try:
            count = int(str(body.get("replicas", "")).strip())
        except ValueError:
            raise ConfigError(
                "replicas", str(body.get("replicas"))[:20], "expected a whole number"
            ) from None
        if not 0 <= count <= 64:
            raise ConfigError("replicas", str(count), "expected 0 to 64")
        out = mitigate.scale_node(p, node, count)
        return {"message": f"{node} runs {out['replicas']} replica(s) (asked {count})", **out}

    def close(self) -> None:
        """No more actions (the drill is over)."""
        self.closed = True

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.as_dict() for r in self.records]
