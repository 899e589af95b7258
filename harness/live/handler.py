"""Routing of the live page's requests: tokens first, then the method, then the route.

Routes (every one needs a token; ``/facilitator/...`` only the facilitator's):

=====================================  ======  =============================================
``/``                                  GET     the trainee page
``/api/state``                         GET     charts, timeline, replicas, nodes, log tails
``/api/log/<replica>``                 GET     the last lines of one replica's log (text)
``/api/act/<name>``                    POST    a registered action (JSON in, JSON out)
``/facilitator/``                      GET     the facilitator page (unfiltered)
``/facilitator/api/state``             GET     the unfiltered state and facilitator data
``/facilitator/api/act/<name>``        POST    a facilitator action
=====================================  ======  =============================================
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from harness.errors import HarnessError
from harness.live.page import render_page
from harness.live.state import LOG_MAX_LINES, View, replica_log, tail_lines, viewed_lines

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
TOKEN_HEADER = "X-Gpuchaos-Token"
_TOKEN_IN_LINE = re.compile(r"token=[^&\s]*")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

#: A Content-Security-Policy that allows nothing but this page's own inline parts and
#: requests to its own origin: nothing is fetched from elsewhere, no page may frame it.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


class Backend(Protocol):
    """What the handler asks of :class:`harness.live.server.LiveServer`."""

    run_dir: Path
    title: str
    allow_remote: bool

    def token_role(self, token: str | None) -> str | None: ...
    def action(self, path: str, facilitator: bool) -> Callable[[dict[str, Any]], Any] | None: ...
    def panels(self, facilitator: bool) -> list[tuple[str, str]]: ...
    def view(self, facilitator: bool) -> View: ...
    def state_json(self, facilitator: bool) -> bytes: ...
    def known_replicas(self) -> set[str]: ...


class Handler(BaseHTTPRequestHandler):
    server_version = "gpuchaos-live"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    @property
    def live(self) -> Backend:
        return self.server.live  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), _TOKEN_IN_LINE.sub("token=…", format % args))

    # --- responses ---------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", CSP)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, default=str).encode(), "application/json", extra)

    def _refuse(self, status: int, why: str, extra: dict[str, str] | None = None) -> None:
        self._json(status, {"error": why}, extra)

    # --- checks ------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        """While bound to loopback, only loopback names in ``Host`` (no DNS rebinding)."""
        if self.live.allow_remote:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return name in _LOOPBACK_HOSTS

    def _route(self) -> tuple[bool, str, dict[str, list[str]]]:
        """(facilitator route?, the path below it, query)."""
        parts = urlsplit(self.path)
        path = parts.path
        facilitator = path == "/facilitator" or path.startswith("/facilitator/")
        if facilitator:
            path = path[len("/facilitator") :] or "/"
        return facilitator, path, parse_qs(parts.query)

    def _allowed(self, facilitator: bool, token: str | None) -> bool:
        role = self.live.token_role(token)
        return role == "facilitator" if facilitator else role is not None

    # --- methods -----------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_ok():
            return self._refuse(403, "wrong Host for a loopback server")
        facilitator, path, query = self._route()
        token = (query.get("token") or [""])[0]
        if not self._allowed(facilitator, token):
            return self._refuse(403, "a valid token is needed (the URL gpuchaos printed)")
        if path.startswith("/api/act/"):
            return self._refuse(405, "actions are POST only", {"Allow": "POST"})
        if path in ("/", "/index.html"):
            page = render_page(self.live.title, self.live.panels(facilitator), facilitator)
            return self._send(200, page.encode(), "text/html; charset=utf-8")
        if path == "/api/state":
            return self._send(200, self.live.state_json(facilitator), "application/json")
        if path.startswith("/api/log/"):
            return self._log(path[len("/api/log/") :], query, facilitator)
        return self._refuse(404, "no such page")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _log(self, replica_id: str, query: dict[str, list[str]], facilitator: bool) -> None:
        known = self.live.known_replicas()
        path = replica_log(self.live.run_dir, replica_id, known)
        if path is None:
            return self._refuse(404, "not a log of one of the run's replicas")
        try:
            n = min(LOG_MAX_LINES, max(1, int((query.get("lines") or ["100"])[0])))
        except ValueError:
            return self._refuse(400, "lines: expected a number")
        view = self.live.view(facilitator)
        lines = viewed_lines(replica_id, tail_lines(path, LOG_MAX_LINES), view)[-n:]
        self._send(200, "\n".join(lines).encode(), "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        if not self._host_ok():
            return self._refuse(403, "wrong Host for a loopback server")
        facilitator, path, _ = self._route()
        if not path.startswith("/api/act/"):
            return self._refuse(405, "only actions take POST", {"Allow": "GET"})
        body = self._body()
        if body is None:
            return None
        token = self.headers.get(TOKEN_HEADER) or body.pop("token", None)
        if not isinstance(token, str) or not self._allowed(facilitator, token):
            return self._refuse(403, "a valid token is needed (the URL gpuchaos printed)")
        body.pop("token", None)
        name = path[len("/api/act/") :]
        action = self.live.action(name, facilitator)
        if action is None:
            return self._refuse(404, f"no action {name!r}")
        try:
            answer = action(body)
        except HarnessError as exc:
            return self._refuse(400, str(exc))
        except Exception as exc:
            log.exception("action %s failed", name)
            return self._refuse(500, f"action failed: {type(exc).__name__}: {exc}")
        self._json(200, answer if isinstance(answer, dict) else {"result": answer})

    def _body(self) -> dict[str, Any] | None:
        """The JSON object of the request (an empty body is ``{}``); refuses and returns
        None when it is too big or not a JSON object."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._refuse(413 if length > MAX_BODY else 400, "bad Content-Length")
            self.close_connection = True
            return None
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            self._refuse(400, "expected a JSON object")
            return None
        return body

    def _other(self) -> None:
        self._refuse(405, "method not allowed", {"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other
