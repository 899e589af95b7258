"""What the trainee may see of a drill: everything on-call would see, nothing of the answer.

The live page passes every timeline event, replica row and log line through a view
(:meth:`harness.live.server.LiveServer.set_view`). The drill's view hides the fault's own
events (``fault_start``, ``fault_end``, ``fault_effect``) and anything else that names a
registered fault or its revert action (an abort reason, a log line), so neither the page nor
its JSON can give the scenario away; replicas, nodes, SLIs, telemetry and logs stay.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from harness.live.state import View

#: Timeline events that exist only because a fault was injected.
FAULT_EVENTS = frozenset({"fault_start", "fault_end", "fault_effect"})


def hidden_words() -> set[str]:
    """Every registered fault's name and revert action, on every platform: a trainee who
    reads one of them anywhere would know the answer (or rule one out)."""
    from harness.faults import registry

    words: set[str] = set()
    for fault in registry.faults():
        words.add(fault.name)
        if fault.revert_action:
            words.add(fault.revert_action)
    return words


def trainee_view(words: Iterable[str]) -> View:
    """A view that hides the fault events and every item whose text holds one of ``words``."""
    hide = sorted({w.lower() for w in words if w}, key=len, reverse=True)

    def view(item: dict[str, Any]) -> dict[str, Any] | None:
        if item.get("kind") in FAULT_EVENTS:
            return None
        text = json.dumps(item, default=str).lower()
        if any(word in text for word in hide):
            return None
        return item

    return view
