"""The run that Chaos Toolkit activities act on.

chaoslib calls activities as plain functions in this process; they find the platform, the
timeline and the run folder here. ``gpuchaos run`` activates a context around
``run_experiment``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import HarnessSpec
from harness.errors import ChaosError
from harness.platforms.base import Platform
from harness.rundir import RunDir
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.scoring.recent import RecentRequests


@dataclass
class RunContext:
    platform: Platform
    timeline: Timeline
    run_dir: Path
    spec: HarnessSpec
    t0: float  # load start, unix seconds
    _recent: RecentRequests | None = field(default=None, repr=False)

    @property
    def requests_path(self) -> Path:
        """The records the probes read: the run's, or with tenancy the first tenant's."""
        tenancy = self.spec.tenancy
        paths = RunDir(self.run_dir)
        return paths.requests if tenancy is None else paths.tenant(tenancy.names()[0]).requests

    def recent_requests(self, path: Path) -> RecentRequests:
        """The run's incremental reader of ``path`` (``requests.csv``), made on first use."""
        from harness.scoring.recent import RecentRequests

        with _lock:
            if self._recent is None or self._recent.path != path:
                self._recent = RecentRequests(path)
            return self._recent


_lock = threading.Lock()
_current: RunContext | None = None


def current() -> RunContext:
    """The active run; activities call this. Raises ChaosError outside ``gpuchaos run``."""
    with _lock:
        ctx = _current
    if ctx is None:
        raise ChaosError(
            "no gpuchaos run is active: run this experiment with `gpuchaos run`, "
            "which deploys the workload these activities act on"
        )
    return ctx


@contextmanager
def activate(ctx: RunContext) -> Iterator[RunContext]:
    global _current
    with _lock:
        _current = ctx
    try:
        yield ctx
    finally:
        with _lock:
            _current = None
