"""Stand-in pods for the Kubernetes tests: one small HTTP server on loopback per pod that
the emulator's pod proxy (tests/k8s/kmock_cluster.py) passes requests to.

Each serves what the harness reads of a reference-workload pod: Prometheus ``/metrics``
(queue, running, KV cache, OOMs, failed requests, with values the test sets), the fault hook
of contract C1 (``/admin/fault``, guarded by the token of the platform's Secret: 404 without
one, 403 on a wrong one), an inference route that fails with "CUDA error" once poisoned, and
``/health/live`` (200; no answer while hung). Every hook call is recorded with the token it
carried, so a test can say which pod was called, how, and with which token.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_HEADER = "X-Gpuchaos-Fault-Token"


@dataclass
class PodState:
    """One stand-in pod: its hook state, its gauges and what it was asked."""

    name: str
    metrics: dict[str, float] = field(
        default_factory=lambda: {
            "vllm:num_requests_waiting": 3.0,
            "vllm:num_requests_running": 2.0,
            "vllm:gpu_cache_usage_perc": 0.25,
            "gpuchaos_oom_total": 1.0,
        }
    )
    poisoned: bool = False
    xid: int | None = None
    throttle: float = 1.0
    contend: bool = False
    failures: int = 0
    hook_calls: list[tuple[str, dict[str, Any] | None, str | None]] = field(default_factory=list)
    unhung: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.unhung.set()

    def state(self) -> dict[str, Any]:
        return {
            "poisoned": self.poisoned,
            "xid": self.xid,
            "throttle": self.throttle,
            "hang": not self.unhung.is_set(),
            "contend": self.contend,
        }


class FakePods:
    """Starts a stand-in server per pod on demand (the emulator's ``backend_factory``)."""

    def __init__(self, token: Callable[[], str | None]) -> None:
        self._token = token
        self.pods: dict[str, PodState] = {}
        self._servers: list[ThreadingHTTPServer] = []
        self._lock = threading.Lock()

    def __call__(self, namespace: str, pod: str) -> int:
        with self._lock:
            state = self.pods.setdefault(pod, PodState(pod))
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, self._token))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
            return int(server.server_address[1])

    def close(self) -> None:
        for pod in self.pods.values():
            pod.unhung.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()


@contextlib.contextmanager
def fake_pods(token: Callable[[], str | None]) -> Iterator[FakePods]:
    pods = FakePods(token)
    try:
        yield pods
    finally:
        pods.close()


def _handler(pod: PodState, token: Callable[[], str | None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any] | None:
            size = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(size)) if size else None

        def _hook(self, method: str) -> None:
            body = self._body() if method == "POST" else None
            given = self.headers.get(TOKEN_HEADER)
            pod.hook_calls.append((method, body, given))
            want = token()
            if not want:
                self._send(404, {"detail": "Not Found"})
                return
            if given is None or not hmac.compare_digest(given, want):
                self._send(403, {"detail": "bad token"})
                return
            if body is not None:
                kind = body.get("kind")
                if kind == "poison":
                    pod.poisoned, pod.xid = True, int(body.get("xid", 79))
                elif kind == "throttle":
                    pod.throttle = float(body["factor"])
                elif kind == "hang":
                    pod.unhung.clear()
                elif kind == "contend":
                    pod.contend = True
                elif kind == "clear":
                    pod.throttle, pod.contend = 1.0, False
                    pod.unhung.set()
            self._send(200, pod.state())

        def do_GET(self) -> None:
            if self.path == "/admin/fault":
                self._hook("GET")
                return
            pod.unhung.wait(30)
            if self.path == "/metrics":
                lines = [f'{k}{{model_name="tiny"}} {v}' for k, v in pod.metrics.items()]
                lines.append(f"gpuchaos_request_failures_total {pod.failures}")
                self._send(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
            elif self.path == "/health/live":
                self._send(200, {"status": "live"})
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            if self.path == "/admin/fault":
                self._hook("POST")
                return
            pod.unhung.wait(30)
            self._body()
            if pod.poisoned:
                pod.failures += 1
                err = "CUDA error: an illegal memory access was encountered"
                self._send(500, {"error": {"message": f"{err} (xid {pod.xid})"}})
            else:
                self._send(200, {"choices": [{"text": "x"}]})

    return Handler
