"""Where workloads run: ``local`` (the embedded default), ``kubernetes``, or an external
endpoint that the harness only sends traffic to."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import HarnessSpec, KubernetesPlatformSpec
from harness.rundir import RunDir
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.platforms.external import ExternalEndpoint
    from harness.platforms.kubernetes import KubernetesPlatform
    from harness.platforms.local import LocalPlatform

    AnyPlatform = LocalPlatform | KubernetesPlatform | ExternalEndpoint


def make_platform(
    spec: HarnessSpec, timeline: Timeline, run_dir: Path, kube_context: str | None = None
) -> AnyPlatform:
    """The platform an experiment names (each kind imported only when used)."""
    if spec.endpoint is not None:  # an external server: deploy nothing (validate checked faults)
        from harness.platforms.external import ExternalEndpoint

        return ExternalEndpoint(spec.endpoint, timeline)
    if isinstance(spec.platform, KubernetesPlatformSpec):
        from harness.platforms.kubernetes import KubernetesPlatform

        return KubernetesPlatform(
            spec.platform, spec.workload, timeline, run_dir, context=kube_context
        )
    from harness.platforms.local import LocalPlatform

    assert spec.platform is not None  # HarnessSpec requires a platform or an endpoint
    return LocalPlatform(spec.platform, spec.workload, timeline, RunDir(run_dir).logs)
