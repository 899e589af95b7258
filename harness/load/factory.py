"""What the run loop asks of a load runner (:class:`LoadRunner`), and which one it gets.

Three runners keep this contract: one local Locust process
(:class:`~harness.load.local.LocustRunner`), a master with local worker processes
(:class:`~harness.load.local_workers.DistributedLocustRunner`), and Locust as Kubernetes
Jobs (:class:`~harness.load.k8s_runner.KubernetesJobsRunner`). :func:`make_load_runner`
picks one from the load spec; the loop in :mod:`harness.runner` sees only the protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from harness.config import LoadSpec
from harness.errors import LoadError
from harness.load.k8s_runner import KubernetesJobsRunner
from harness.load.local import LocustRunner
from harness.load.local_workers import DistributedLocustRunner
from harness.load.tenants import tenant_loads
from harness.timeline import Timeline


class LoadRunner(Protocol):
    """A load run: ``start()``, then ``wait()`` for the shape to end and/or ``stop()``."""

    @property
    def endpoint(self) -> str:
        """Where the requests go."""
        ...

    @property
    def t0(self) -> float:
        """Unix time of the load start (offset 0 of the shape); set by :meth:`start`."""
        ...

    @property
    def running(self) -> bool:
        """Whether the load still runs."""
        ...

    @property
    def returncode(self) -> int | None:
        """Locust's exit code once stopped; ``None`` before, or when it was cut short."""
        ...

    def start(self) -> None:
        """Start the load; returns once the first request record is in ``requests.csv``;
        raises :class:`~harness.errors.LoadError` (after cleaning up) otherwise."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the load to end by itself (the shape ended); ``False`` on timeout."""
        ...

    def stop(self, grace_s: float = 10.0) -> int | None:
        """Stop the load, merge its records, emit ``load_end`` once; idempotent."""
        ...

    def record_count(self) -> int:
        """Request records written so far."""
        ...

    def load_pids(self) -> dict[str, int]:
        """The load generator's running processes on this machine by telemetry source name
        (``locust``, ``locust-worker-N``), whose CPU telemetry samples; empty when Locust
        runs elsewhere (Kubernetes Jobs)."""
        ...


def make_load_runner(
    spec: LoadSpec,
    endpoint: str,
    run_dir: Path,
    timeline: Timeline,
    *,
    platform: object = None,
    first_record_timeout_s: float = 15.0,
    stop_timeout_s: float | None = None,
) -> LoadRunner:
    """The runner for ``spec``: one Locust process, a master and local workers, or (with
    ``workers_on: kubernetes``) a master and workers as Jobs in ``platform``'s cluster; on a
    tenant pool every tenant's own load (:mod:`harness.load.tenants`), ``spec`` aside."""
    from harness.platforms.local.tenancy import TenantPool

    if isinstance(platform, TenantPool):
        return tenant_loads(
            platform, first_record_timeout_s=first_record_timeout_s, stop_timeout_s=stop_timeout_s
        )
    if spec.workers_on == "kubernetes":
        from harness.platforms.kubernetes.platform import KubernetesPlatform

        if not isinstance(platform, KubernetesPlatform):
            raise LoadError("load.workers_on: kubernetes needs platform.kind: kubernetes")
        return KubernetesJobsRunner(
            spec,
            endpoint,
            run_dir,
            timeline,
            platform=platform,
            first_record_timeout_s=first_record_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )
    if spec.workers >= 1:
        return DistributedLocustRunner(
            spec,
            endpoint,
            run_dir,
            timeline,
            first_record_timeout_s=first_record_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )
    return LocustRunner(
        spec,
        endpoint,
        run_dir,
        timeline,
        first_record_timeout_s=first_record_timeout_s,
        stop_timeout_s=stop_timeout_s,
    )
