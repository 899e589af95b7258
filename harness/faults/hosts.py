"""What faults need of the platform they act on, written down as protocols.

Why protocols: faults sit below the platforms (a platform registers its own node faults
with the reverter), so they must not import one. A fault is handed the run's platform and
uses only what its protocol lists here; any platform that has these members can take the
fault, and mypy checks that the real platforms do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class LocalHost(Protocol):
    """A platform whose replicas are processes on this machine (``local``)."""

    def node_down(self, node: str) -> list[int]: ...

    def node_up(self, node: str) -> None: ...

    def node_device(self, node: str) -> str: ...

    def node_cpus(self, node: str) -> set[int] | None: ...

    def replica_node(self, replica_id: str) -> str: ...

    def replica_pids(self, node: str | None = None) -> dict[str, int]: ...

    def replica_port(self, replica_id: str) -> int | None: ...

    def kill_replica(self, replica_id: str, sig: int = ...) -> int: ...

    def fault_token(self, replica_id: str) -> str | None: ...

    def set_gpu_healthy(self, node: str, healthy: bool, xid: int | None = ...) -> bool: ...


class ClusterHost(Protocol):
    """A platform whose replicas are pods of a Kubernetes cluster (``kubernetes``)."""

    namespace: str
    pod_selector: str
    context: str
    dry_run: bool
    plan: list[str]
    run_dir: Path | None
    cordoned: set[str]
    spec: Any  # KubernetesPlatformSpec: device_plugin, port, token_secret, ...
    workload: Any  # WorkloadSpec: kind (llm, classifier)
    safety: Any  # the allowlists: .namespace(name), .node(name, labels)

    @property
    def api(self) -> Any: ...

    @property
    def chaos_secrets(self) -> dict[str, str]: ...

    @property
    def kubeconfig(self) -> str: ...

    def core(self) -> Any: ...

    def pods(self) -> list[Any]: ...

    def pod_ready(self, pod: Any) -> bool: ...

    def gpu_nodes(self) -> list[Any]: ...

    def gpu_node(self, name: str) -> Any: ...

    def drain(self, node: str, timeout_s: int = ..., ttl_s: float | None = ...) -> list[str]: ...

    def uncordon(self, node: str) -> None: ...

    def fault_token(self, replica_id: str) -> str | None: ...

    def refresh(self) -> None: ...
