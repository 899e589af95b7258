"""Load generation: Locust in a child process, spike shapes, request records."""

from harness.load.runner import LocustRunner
from harness.load.shapes import phase_at, phase_schedule, users_at

__all__ = ["LocustRunner", "phase_at", "phase_schedule", "users_at"]
