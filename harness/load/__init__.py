"""Load generation: Locust in a child process, load shapes, request records."""

from harness.load.runner import LocustRunner
from harness.load.shapes import level_at, phase_at, phase_schedule, users_at

__all__ = ["LocustRunner", "level_at", "phase_at", "phase_schedule", "users_at"]
