"""The facilitator's hand: inject a catalog fault now, for a human-led exercise.

The fault goes through the shared fault lifecycle (:func:`harness.faults.lifecycle.run`:
arguments checked, injected, proven, held, reverted) on a thread of its own, with
``fault_start`` and ``fault_end`` written around it as the timeline control writes them for
an experiment's faults; the trainee's view hides all three kinds. Only the facilitator's
token reaches it (a facilitator action of the live server).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, HarnessError

log = logging.getLogger(__name__)

#: The longest hold a facilitator may give a hand-injected fault.
MAX_HAND_S = 3600.0


@dataclass
class _Ctx:
    platform: Any
    run_dir: Path

    @property
    def timeline(self) -> Any:
        return self.platform.timeline  # the run's timeline, whichever is attached now


class HandInjector:
    """Injects faults the facilitator picks; remembers each, for drill.json."""

    def __init__(self, platform: Any, run_dir: Path) -> None:
        self.ctx = _Ctx(platform, run_dir)
        self.injected: list[dict[str, Any]] = []
        self._threads: list[threading.Thread] = []

    def faults(self) -> list[str]:
        from harness.faults import registry

        return [f.name for f in registry.faults("local")]

    def inject(self, body: dict[str, Any]) -> dict[str, Any]:
        """The facilitator action: ``fault``, ``target``, ``duration_s``."""
        from harness.faults import registry

        name = str(body.get("fault") or "")
        fault = registry.get("local", name)
        if fault is None:
            raise ConfigError(
                "fault", name or "(missing)", f"expected one of {', '.join(self.faults())}"
            )
        raw: dict[str, Any] = {fault.target_arg: str(body.get("target") or "")}
        if fault.hold != "none":
            try:
                duration = float(body.get("duration_s") or 30)
            except (TypeError, ValueError):
                raise ConfigError(
                    "duration_s", str(body.get("duration_s"))[:20], "expected seconds"
                ) from None
            if not 0 < duration <= MAX_HAND_S:
                raise ConfigError(
                    "duration_s", f"{duration:g}", f"expected 0 < seconds <= {MAX_HAND_S:g}"
                )
            raw["duration_s"] = duration
        from harness.faults.lifecycle import parse_args

        parse_args(fault, raw)  # a bad argument is refused now, not on the thread
        entry = {"fault": name, "arguments": raw, "time": time.time(), "status": "injecting"}
        self.injected.append(entry)
        t = threading.Thread(
            target=self._run, args=(fault, raw, entry), daemon=True, name="gpuchaos-hand-fault"
        )
        t.start()
        self._threads.append(t)
        return {"message": f"injecting {name} on {raw[fault.target_arg]}", "fault": name}

    def _run(self, fault: Any, raw: dict[str, Any], entry: dict[str, Any]) -> None:
        from harness.faults.lifecycle import run

        target = str(raw[fault.target_arg])
        details = {"fault": fault.name, "activity": "facilitator", "arguments": raw}
        self.ctx.timeline.emit("fault_start", target, details)
        try:
            out = run(fault, self.ctx, raw)
            entry["status"] = "held" if out.get("held") else "done"
        except HarnessError as exc:
            entry["status"] = f"failed: {exc}"
            log.warning("hand-injected %s on %s failed: %s", fault.name, target, exc)
        except Exception as exc:
            entry["status"] = f"failed: {exc}"
            log.exception("hand-injected %s on %s failed", fault.name, target)
        finally:
            self.ctx.timeline.emit(
                "fault_end", target, {"fault": fault.name, "ended_by": "facilitator"}
            )

    def join(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)
