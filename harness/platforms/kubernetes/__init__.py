"""The ``kubernetes`` platform: the workload as a Deployment on GPU nodes of a cluster."""

from __future__ import annotations

from pathlib import Path

from harness.config import HarnessSpec, KubernetesPlatformSpec
from harness.platforms.kubernetes.platform import KubernetesPlatform
from harness.platforms.registry import register_platform
from harness.timeline import Timeline

__all__ = ["KubernetesPlatform"]


@register_platform("kubernetes")
def _make(
    spec: HarnessSpec, timeline: Timeline, run_dir: Path, kube_context: str | None
) -> KubernetesPlatform:
    assert isinstance(spec.platform, KubernetesPlatformSpec)
    return KubernetesPlatform(spec.platform, spec.workload, timeline, run_dir, context=kube_context)
