"""Load generation: Locust in a child process, load shapes, request records.

The runners (one module each): :mod:`~harness.load.local` (one Locust process),
:mod:`~harness.load.local_workers` (a master and local workers) and
:mod:`~harness.load.k8s_runner` (Locust as Kubernetes Jobs); :mod:`~harness.load.factory`
says what the run loop asks of them and picks one. The locustfile and the modules it
imports (:mod:`~harness.load.userconfig`, :mod:`~harness.load.rowbatch`,
:mod:`~harness.load.recording`, :mod:`~harness.load.protocols`: what one request of each
``load.user`` is) run only inside the Locust process.
"""

from harness.load.local import LocustRunner
from harness.load.shapes import level_at, phase_at, phase_schedule, users_at

__all__ = ["LocustRunner", "level_at", "phase_at", "phase_schedule", "users_at"]
