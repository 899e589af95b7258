"""Connecting to the cluster, and the safety rules every Kubernetes action goes through.

- The kube context the experiment names (or ``--kube-context``) must be the current one.
- Namespaces outside ``allowed_namespaces`` and nodes without the GPU node labels are
  refused.
- In dry-run mode no mutating request leaves the process: a guard on the client's REST layer
  refuses every method but GET, whoever sends it (our code or chaostoolkit-kubernetes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import KubernetesPlatformSpec
from harness.errors import PlatformError
from harness.platforms.kubernetes.manifests import matches

log = logging.getLogger(__name__)

#: HTTP methods that do not change the cluster.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class DryRunRefused(PlatformError):
    """A mutating request was attempted in dry-run mode."""


def kubeconfig_path(spec: KubernetesPlatformSpec) -> str:
    """The kubeconfig in use: the spec's, else $KUBECONFIG, else ~/.kube/config."""
    if spec.kubeconfig:
        return str(Path(spec.kubeconfig).expanduser())
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def check_context(spec: KubernetesPlatformSpec, override: str | None) -> tuple[str, str]:
    """The (kubeconfig, context) to use; PlatformError unless the required context is current.

    The required context is ``override`` (``--kube-context``) or ``spec.context``; one of
    them must be set, so that a run never acts on whatever cluster happens to be current.
    """
    from kubernetes import config

    required = override or spec.context
    path = kubeconfig_path(spec)
    if not required:
        raise PlatformError(
            "refusing to act on a cluster no one named: set platform.context in the "
            "experiment or pass --kube-context"
        )
    try:
        contexts, active = config.list_kube_config_contexts(config_file=path)
    except (config.ConfigException, OSError) as exc:
        raise PlatformError(f"cannot read kubeconfig {path}: {exc}") from exc
    names = [c["name"] for c in contexts]
    current = (active or {}).get("name")
    if required not in names:
        raise PlatformError(
            f"kube context {required!r} is not in {path} (contexts: {', '.join(names) or 'none'})"
        )
    if current != required:
        raise PlatformError(
            f"refusing to run: the current kube context is {current!r}, the experiment "
            f"requires {required!r} (switch with `kubectl config use-context {required}`)"
        )
    return path, required


def api_client(path: str, context: str) -> Any:
    """An ApiClient for ``context``; also makes it the default (chaostoolkit-kubernetes)."""
    from kubernetes import client, config
    from kubernetes.config import kube_config

    # chaostoolkit-kubernetes must read the same file: it checks $KUBECONFIG, then calls
    # load_kube_config() without a file, which falls back to a default the client read from
    # $KUBECONFIG when it was imported
    os.environ["KUBECONFIG"] = path
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path
    try:
        config.load_kube_config(config_file=path, context=context)
        return client.ApiClient()
    except (config.ConfigException, OSError) as exc:
        raise PlatformError(f"cannot load kube context {context!r} from {path}: {exc}") from exc


@dataclass
class Safety:
    """What the harness may touch in the cluster."""

    allowed_namespaces: list[str]
    gpu_node_selector: dict[str, str]
    refused: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, spec: KubernetesPlatformSpec) -> Safety:
        return cls(list(spec.allowed_namespaces), dict(spec.gpu_node_selector))

    def namespace(self, namespace: str) -> None:
        """PlatformError unless ``namespace`` is allowlisted."""
        if namespace not in self.allowed_namespaces:
            self._refuse(
                f"refusing to act in namespace {namespace!r}: not in allowed_namespaces "
                f"({', '.join(self.allowed_namespaces)})"
            )

    def node(self, name: str, labels: dict[str, str] | None) -> None:
        """PlatformError unless the node carries every GPU node label."""
        if not matches(labels, self.gpu_node_selector):
            wanted = ",".join(f"{k}={v}" for k, v in self.gpu_node_selector.items())
            self._refuse(f"refusing to act on node {name!r}: it does not match {wanted}")

    def _refuse(self, message: str) -> None:
        self.refused.append(message)
        raise PlatformError(message)


_guard_lock = threading.Lock()
_guard_depth = 0
_original_request: Any = None


def _refusing_request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
    if method.upper() not in READ_METHODS:
        raise DryRunRefused(f"dry run: refused {method.upper()} {url}")
    return _original_request(self, method, url, *args, **kwargs)


@contextlib.contextmanager
def no_mutations() -> Iterator[None]:
    """While active, every Kubernetes client in this process can only read."""
    global _guard_depth, _original_request
    from kubernetes.client import rest

    with _guard_lock:
        if _guard_depth == 0:
            _original_request = rest.RESTClientObject.request
            rest.RESTClientObject.request = _refusing_request  # type: ignore[method-assign]
        _guard_depth += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_depth -= 1
            if _guard_depth == 0:
                rest.RESTClientObject.request = _original_request  # type: ignore[method-assign]
