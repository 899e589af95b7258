"""The embedded local platform: virtual nodes, replicas as processes, a supervisor, a router."""

from __future__ import annotations

from pathlib import Path

from harness.config import HarnessSpec, LocalPlatformSpec
from harness.platforms.base import Platform
from harness.platforms.local.checks import LocalChecks
from harness.platforms.local.platform import LocalPlatform
from harness.platforms.registry import register_checks, register_platform
from harness.rundir import RunDir
from harness.timeline import Timeline

__all__ = ["LocalPlatform"]

register_checks("local", LocalChecks())


@register_platform("local")
def _make(
    spec: HarnessSpec, timeline: Timeline, run_dir: Path, kube_context: str | None
) -> Platform:
    assert isinstance(spec.platform, LocalPlatformSpec)
    if spec.tenancy is not None:  # several tenants on the pool of platform.nodes
        from harness.platforms.local.tenancy import TenantPool

        return TenantPool(spec, timeline, run_dir)
    return LocalPlatform(spec.platform, spec.workload, timeline, RunDir(run_dir).logs)
