"""Where workloads run: ``local`` (the embedded default), ``kubernetes``, or an external
endpoint that the harness only sends traffic to. Each platform kind registers itself
(:mod:`harness.platforms.registry`) and is imported only when an experiment names it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config import HarnessSpec
from harness.platforms.registry import make
from harness.timeline import Timeline


def make_platform(
    spec: HarnessSpec, timeline: Timeline, run_dir: Path, kube_context: str | None = None
) -> Any:
    """The platform an experiment names (each kind imported only when used)."""
    if spec.endpoint is not None:  # an external server: deploy nothing (validate checked faults)
        from harness.platforms.external import ExternalEndpoint

        return ExternalEndpoint(spec.endpoint, timeline, spec.load)
    return make(spec, timeline, run_dir, kube_context)
