"""Port-forward through the Kubernetes API: a listener on 127.0.0.1 whose connections are
tunnelled (``pods/portforward``) to the workload's Ready pods, round-robin per connection.

Unlike ``kubectl port-forward svc/...``, which pins one pod, each new connection goes to the
next Ready pod, so load from outside the cluster spreads over the replicas like a Service's.
A connection whose pod goes away is cut, as it would be through a Service: the client sees
the failure and records it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from harness.errors import PlatformError

log = logging.getLogger(__name__)

_CHUNK = 65536


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(_CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class PortForwarder:
    """Listens on 127.0.0.1:<ephemeral>; tunnels each connection to a Ready pod's port."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        ready_pods: Callable[[], list[str]],
        port: int,
    ) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.ready_pods = ready_pods
        self.remote_port = port
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise PlatformError("port-forward is not listening")
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.settimeout(0.5)
        self._listener = sock
        self._thread = threading.Thread(target=self._accept, name="k8s-port-forward", daemon=True)
        self._thread.start()
        log.info("port-forward listening on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    s.close()
            self._open.clear()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(
                target=self._tunnel, args=(conn,), name="k8s-pf-conn", daemon=True
            ).start()

    def _tunnel(self, conn: socket.socket) -> None:
        from kubernetes.stream import portforward

        pods = self.ready_pods()
        if not pods:
            log.debug("port-forward: no Ready pod; closing the connection")
            conn.close()
            return
        pod = pods[next(self._counter) % len(pods)]
        try:
            pf = portforward(
                self.core.connect_get_namespaced_pod_portforward,
                pod,
                self.namespace,
                ports=str(self.remote_port),
            )
            remote = pf.socket(self.remote_port)
            remote.setblocking(True)
        except Exception as exc:
            log.debug("port-forward to %s failed: %s", pod, exc)
            conn.close()
            return
        with self._lock:
            self._open.update((conn, remote))
        back = threading.Thread(target=_pump, args=(remote, conn), daemon=True)
        back.start()
        _pump(conn, remote)
        back.join()
        for s in (conn, remote):
            with contextlib.suppress(OSError):
                s.close()
        with self._lock:
            self._open.discard(conn)
            self._open.discard(remote)
        with contextlib.suppress(Exception):
            pf.close()
