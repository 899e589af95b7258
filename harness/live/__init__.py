"""The live dashboard of a run (``gpuchaos run --serve``; the drill's trainee page).

:class:`LiveServer` serves one run folder's page while the run goes: the charts of
``report.html`` (the same renderer, :mod:`harness.report.charts`) redrawn every second,
the timeline, each replica's state and log tail; with a view that hides what the trainee
must not see, actions behind a per-run token, and a facilitator page behind a second one.
It reads the run folder's files and the platform's ``replicas()`` and imports nothing above
the report layer, so the runner can start it.
"""

from harness.live.server import LiveServer, is_loopback, parse_bind
from harness.live.state import ReplicaSource, View

__all__ = ["LiveServer", "ReplicaSource", "View", "is_loopback", "parse_bind"]
