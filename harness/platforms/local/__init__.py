"""The embedded local platform: virtual nodes, replicas as processes, a supervisor, a router."""

from harness.platforms.local.platform import LocalPlatform

__all__ = ["LocalPlatform"]
