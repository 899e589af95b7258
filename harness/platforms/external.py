"""An inference server the harness did not deploy (vLLM, TGI, Triton, ...): only a URL.

Implements the Platform contract so load, telemetry and scoring work unchanged: ``start``
waits until the optional ready path answers 200, there are no nodes or replicas, and node
faults raise :class:`PlatformError` (``gpuchaos validate`` already rejects them).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx

from harness.config import EndpointSpec, LoadSpec
from harness.connection import connection_headers, tls_verify
from harness.errors import PlatformError, WorkloadNotReady
from harness.platforms.base import ReplicaInfo
from harness.timeline import Timeline

log = logging.getLogger(__name__)

NO_NODES = "not available with an external endpoint (the harness deployed nothing)"


class ExternalEndpoint:
    """A running server addressed by URL."""

    kind = "external"

    def __init__(
        self, spec: EndpointSpec, timeline: Timeline, load: LoadSpec | None = None
    ) -> None:
        self.spec = spec
        self.timeline = timeline
        self.load = load  # its token, headers and TLS settings: the readiness check uses them

    @property
    def endpoint(self) -> str:
        return self.spec.url.rstrip("/")

    def start(self) -> None:
        """Wait until ``ready_path`` answers 200 (no wait without one), asked with the load's
        bearer token, headers and TLS settings, as the load will ask."""
        path = self.spec.ready_path
        if path is None:
            log.info("external endpoint %s (no readiness check)", self.endpoint)
            return
        url = self.endpoint + "/" + path.lstrip("/")
        deadline = time.monotonic() + self.spec.ready_timeout_s
        last = "no answer"
        headers = connection_headers(self.load, os.environ) if self.load is not None else {}
        verify = tls_verify(self.load) if self.load is not None else True
        with httpx.Client(timeout=2.0, headers=headers, verify=verify) as client:
            while time.monotonic() < deadline:
                try:
                    status = client.get(url).status_code
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                else:
                    if status == 200:
                        log.info("external endpoint %s is ready", self.endpoint)
                        self.timeline.emit("replica_ready", self.endpoint, {"url": url})
                        return
                    last = f"HTTP {status}"
                time.sleep(0.25)
        raise WorkloadNotReady(
            f"external endpoint {url} not ready after {self.spec.ready_timeout_s:g} s ({last})"
        )

    def stop(self) -> None:
        """Nothing to tear down."""

    def attach(self, timeline: Timeline, run_dir: Path) -> None:
        """Report to another run's timeline (a game day); nothing is kept per run."""
        self.timeline = timeline

    def nodes(self) -> list[str]:
        return []

    def replicas(self) -> list[ReplicaInfo]:
        return []

    def node_down(self, node: str) -> list[int]:
        raise PlatformError(f"node_down({node!r}): {NO_NODES}")

    def node_up(self, node: str) -> None:
        raise PlatformError(f"node_up({node!r}): {NO_NODES}")
