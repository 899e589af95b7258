"""The ``kubernetes`` platform: the workload as a Deployment on GPU nodes of a cluster."""

from harness.platforms.kubernetes.platform import KubernetesPlatform

__all__ = ["KubernetesPlatform"]
