"""The trainee's view of a drill hides the fault and nothing on-call needs."""

from __future__ import annotations

from typing import Any

from harness.drill.view import hidden_words, trainee_view


def test_fault_events_and_anything_naming_a_fault_are_hidden() -> None:
    words = hidden_words()
    assert {"lose_node", "hang_replica", "resume_replica", "contend_compute"} <= words
    view = trainee_view(words)
    for kind in ("fault_start", "fault_end", "fault_effect"):
        assert view({"kind": kind, "target": "node-a", "details": {}}) is None
    abort = {"kind": "abort", "target": "x", "details": {"reason": "hang_replica: failed"}}
    assert view(abort) is None
    assert view({"kind": "log_line", "replica": "node-a-0", "line": "HANG_REPLICA x"}) is None


def test_what_on_call_sees_stays() -> None:
    view = trainee_view(hidden_words())
    shown: list[dict[str, Any]] = [
        {"kind": "replica_exit", "target": "node-a-0", "details": {"pid": 1, "returncode": -9}},
        {"kind": "node_down", "target": "node-a", "details": {"pids": [1]}},
        {"kind": "replica", "id": "node-a-0", "node": "node-a", "state": "unready"},
        {"kind": "log_line", "replica": "node-a-0", "line": "MemoryError in decode"},
        {"kind": "drill_action", "target": "trainee", "details": {"action": "ack"}},
    ]
    for item in shown:
        assert view(item) == item
