"""The live page's HTTP server: one run's dashboard, on a thread of the harness.

Safety rules (docs/telemetry-and-reports.md, "Live dashboard: --serve"), each enforced here:

- It binds 127.0.0.1 unless ``allow_remote`` (``--serve-remote``) says otherwise; a
  non-loopback address without it is a :class:`ConfigError` before anything listens. While
  bound to loopback, a request whose ``Host`` is not a loopback name is refused (a web page
  elsewhere cannot reach it through DNS rebinding).
- Every request needs a per-run token (``secrets.token_urlsafe``), pages and data included;
  the printed URL carries it. The facilitator has a second token: facilitator pages, data
  and actions (``/facilitator/...``) take only that one, never the trainee's.
- Acting requests are ``POST /api/act/<name>`` with the token in the ``X-Gpuchaos-Token``
  header or the JSON body's ``token`` field; a GET, a missing or a wrong token is refused
  (405/403) before the action is looked up, so nothing is called.
- No path parameter names a file: a replica's log is found by its id among the platform's
  replicas, inside the run's ``logs/`` folder (:func:`harness.live.state.replica_log`).
- Responses carry a Content-Security-Policy that allows nothing from elsewhere, no-store
  and no-referrer (the token is in the URL).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.live.handler import Handler
from harness.live.state import ReplicaSource, View, build_state, show_all

log = logging.getLogger(__name__)

#: How old a built state may be before the next poll rebuilds it (many pages, one build).
STATE_MAX_AGE_S = 0.8

Action = Callable[[dict[str, Any]], dict[str, Any]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_bind(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``PORT``, ``HOST:PORT``, ``[V6]:PORT``) as (host, port); the host
    defaults to 127.0.0.1 and port 0 means a free one."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(
            "--serve", text, "expected [HOST:]PORT, e.g. 8080 or 127.0.0.1:0"
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigError("--serve", text, "the port must be within 0..65535")
    return host, port


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    live: LiveServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class LiveServer:
    """A small HTTP server on a thread serving one run's pages (stdlib only).

    ``run_dir``: the run folder whose files are drawn (read as they grow). ``source``: the
    platform (anything with ``replicas()``) for replica states and logs; the runner sets it
    with :meth:`set_source` once the platform is up. The socket is bound here, so
    :attr:`url` is known before :meth:`start`; a port in use is a :class:`ConfigError`.
    """

    def __init__(
        self,
        run_dir: Path,
        title: str,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote: bool = False,
        source: ReplicaSource | None = None,
    ) -> None:
        host = host.strip("[]") or "127.0.0.1"
        self.check_host(host, allow_remote)
        self.run_dir = Path(run_dir)
        self.title = title
        self.allow_remote = allow_remote
        self.token = secrets.token_urlsafe(16)
        self.facilitator_token = secrets.token_urlsafe(16)
        self._source = source
        self._view: View = show_all
        self._actions: dict[str, Action] = {}
        self._facilitator_actions: dict[str, Action] = {}
        self._panels: dict[str, Callable[[], str]] = {}
        self._facilitator_panels: dict[str, Callable[[], str]] = {}
        self._facilitator_data: dict[str, Callable[[], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._cache: dict[bool, tuple[float, bytes]] = {}
        self._thread: threading.Thread | None = None
        server_class = _HTTPServer6 if ":" in host else _HTTPServer
        try:
            self._httpd = server_class((host, port), Handler)
        except OSError as exc:
            raise ConfigError(
                "--serve", f"{host}:{port}", f"cannot listen: {exc.strerror or exc}"
            ) from None
        self._httpd.live = self
        self.host = host
        self.port = int(self._httpd.server_address[1])

    @staticmethod
    def check_host(host: str, allow_remote: bool) -> None:
        """Refuse (:class:`ConfigError`) a non-loopback ``host`` without ``allow_remote``."""
        if not is_loopback(host) and not allow_remote:
            raise ConfigError(
                "--serve",
                host,
                "not a loopback address: the live page binds 127.0.0.1 unless "
                "--serve-remote allows another address",
            )

    # --- what the page shows and does -------------------------------------------------

    @property
    def source(self) -> ReplicaSource | None:
        """The platform the page shows (None until the runner sets it)."""
        return self._source

    def set_source(self, source: ReplicaSource | None) -> None:
        """The platform whose replicas (states, logs) the page shows."""
        self._source = source

    def set_view(self, view: View) -> None:
        """Filters every timeline event, replica row (``kind`` "replica") and log line
        (``kind`` "log_line", with ``replica`` and ``line``) before the trainee page sees
        it: return None to hide it, or a changed copy. Default: show everything. The
        facilitator's page is never filtered."""
        with self._lock:
            self._view = view
            self._cache.clear()

    def add_action(self, path: str, handler: Action, facilitator: bool = False) -> None:
        """``POST /api/act/<path>`` (``/facilitator/api/act/<path>`` with ``facilitator``)
        with a JSON object; needs the token (header ``X-Gpuchaos-Token`` or the ``token``
        field, removed before ``handler`` sees the body). ``handler`` returns a JSON object
        (the response); a :class:`HarnessError` it raises is a 400 with its message."""
        if not path or not all(c.isalnum() or c in "-_" for c in path):
            raise ValueError(f"action path {path!r}: letters, digits, - and _ only")
        (self._facilitator_actions if facilitator else self._actions)[path] = handler

    def add_panel(self, name: str, html: Callable[[], str], facilitator: bool = False) -> None:
        """An extra HTML panel on the trainee page (or the facilitator's), rendered when the
        page loads. A ``<form data-act="NAME">`` in it posts its fields as JSON to that action
        with the token and shows the answer in its ``[data-act-result]`` element; scripts can
        call ``gpuchaosAct(name, body)`` (a Promise of the answer)."""
        (self._facilitator_panels if facilitator else self._panels)[name] = html

    def add_facilitator_data(self, name: str, data: Callable[[], dict[str, Any]]) -> None:
        """Served only under /facilitator/ with the facilitator token, never on trainee URLs:
        in ``/facilitator/api/state`` as ``facilitator[name]``."""
        self._facilitator_data[name] = data

    # --- addresses ---------------------------------------------------------------------

    def _base(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The trainee page, token included."""
        return f"{self._base()}/?token={self.token}"

    @property
    def facilitator_url(self) -> str:
        return f"{self._base()}/facilitator/?token={self.facilitator_token}"

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Serve on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="gpuchaos-live", daemon=True
        )
        self._thread.start()
        log.info("live page at %s:%d (%s)", self.host, self.port, self.run_dir)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice or without start."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    @property
    def running(self) -> bool:
        return self._thread is not None

    # --- used by the handler -----------------------------------------------------------

    def token_role(self, token: str | None) -> str | None:
        """ "facilitator", "trainee" or None for a wrong or missing token."""
        if not token:
            return None
        if secrets.compare_digest(token.encode(), self.facilitator_token.encode()):
            return "facilitator"
        if secrets.compare_digest(token.encode(), self.token.encode()):
            return "trainee"
        return None

    def action(self, path: str, facilitator: bool) -> Action | None:
        return (self._facilitator_actions if facilitator else self._actions).get(path)

    def panels(self, facilitator: bool) -> list[tuple[str, str]]:
        out = []
        for name, html in (self._facilitator_panels if facilitator else self._panels).items():
            try:
                out.append((name, html()))
            except Exception:
                log.exception("panel %s failed", name)
        return out

    def view(self, facilitator: bool) -> View:
        return show_all if facilitator else self._view

    def state_json(self, facilitator: bool) -> bytes:
        """The state as JSON, built at most once per :data:`STATE_MAX_AGE_S` per audience."""
        with self._lock:
            cached = self._cache.get(facilitator)
            if cached is not None and time.monotonic() - cached[0] < STATE_MAX_AGE_S:
                return cached[1]
            view = self.view(facilitator)
            try:
                state = build_state(self.run_dir, self.title, self._source, view)
                if facilitator:
                    state["facilitator"] = self._facilitator_state()
                body = json.dumps(state, default=str, allow_nan=False).encode()
            except Exception as exc:  # a file mid-write: keep the last good state
                log.debug("live state failed", exc_info=True)
                if cached is not None:
                    return cached[1]
                failed = {"title": self.title, "error": f"state unavailable: {exc}"}
                body = json.dumps(failed).encode()
            self._cache[facilitator] = (time.monotonic(), body)
            return body

    def _facilitator_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, data in self._facilitator_data.items():
            try:
                out[name] = data()
            except Exception as exc:
                log.exception("facilitator data %s failed", name)
                out[name] = {"error": str(exc)}
        return out

    def known_replicas(self) -> set[str]:
        """Ids of the replicas the platform reports now (the log endpoint's whitelist)."""
        if self._source is None:
            return set()
        try:
            return {r.id for r in self._source.replicas()}
        except Exception:
            return set()
