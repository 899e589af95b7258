"""The recording user: one request of the configured protocol, one row of ``requests.csv``.

Imported only inside the Locust process (by the locustfile, which adds the closed- and
open-loop users on top): it imports locust and gevent. :class:`RecordingUser` sends a
request through its HTTP client directly, has the protocol of ``load.user``
(:mod:`harness.load.protocols`) build its body and read its answer, and leaves exactly one
record and one entry in Locust's statistics per request, failures and requests cut short by
a stop included.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import random
import time
from typing import Any

import gevent
from geventhttpclient.response import HTTPParseError
from geventhttpclient.url import URL
from geventhttpclient.useragent import ConnectionError as ClientConnectionError
from locust import FastHttpUser
from locust.env import Environment

from harness.connection import INSECURE, connection_headers, with_headers
from harness.load.modelname import RequestNotSent
from harness.load.protocols import Measurement, UserContext, describe, protocol_class
from harness.load.rowbatch import ROW, RowBatcher, cached_field
from harness.load.sse import http_error, one_line
from harness.load.userconfig import LOAD, PHASES, PROMPTS, RECORDS_PATH, START
from harness.records import REPLICA_HEADER, RecordWriter, csv_field

log = logging.getLogger(__name__)

#: The protocol of ``load.user``, resolved once per process.
PROTOCOL = protocol_class(LOAD.user)
#: Every status is a response to record, never an exception inside the client.
ALL_STATUSES = frozenset(range(100, 600))
ERROR_BODY_BYTES = 1024
#: The error of an open-loop arrival that was never sent.
NOT_SENT = "not sent: generator behind"
#: Locust's per-request context: none (the record carries what the harness needs).
NO_CONTEXT: dict[str, Any] = {}
#: Every row of this process, batched per turn of gevent's loop; what is left at exit too.
ROWS = RowBatcher(RecordWriter(RECORDS_PATH))
atexit.register(ROWS.flush)
#: load.headers and the bearer token of load.api_key_env, read from this process's
#: environment (a ConfigError naming the variable when it is unset); never logged.
CONNECTION_HEADERS = connection_headers(LOAD, os.environ)
if not LOAD.verify:
    log.warning(INSECURE, "the load's server")


def _ca_bundle_context(cafile: str | None = None) -> Any:
    """The TLS context of ``load.ca_bundle`` (instead of the bundle geventhttpclient offers)."""
    return gevent.ssl.create_default_context(cafile=LOAD.ca_bundle)


class RequestFailed(Exception):
    """What Locust's statistics see for a failed request: the record's error text."""

    def __repr__(self) -> str:
        return str(self)


class RecordingUser(FastHttpUser):
    """Sends one request of the configured protocol and records it (base of both modes).

    The protocol (:data:`PROTOCOL`, one instance per user) gives the path, the body and
    reads the answer; this class sends the request, records HTTP errors, connection errors
    and timeouts, and writes the record.
    """

    abstract = True
    network_timeout = LOAD.request_timeout_s
    connection_timeout = LOAD.request_timeout_s
    max_retries = 0
    # https: certificates checked against the system's CAs, or load.ca_bundle; not checked
    # with load.verify false (Locust's own default; warned about above)
    insecure = not LOAD.verify
    ssl_context_factory = staticmethod(_ca_bundle_context) if LOAD.ca_bundle else None
    _numbers = itertools.count()

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._rng = random.Random(f"{LOAD.seed}:{next(self._numbers)}")
        self._t0 = START.get()  # the load's start: a worker reads its master's
        agent = self.client.client
        agent.valid_response_codes = ALL_STATUSES  # type: ignore[misc]
        agent.redirect_response_codes = frozenset()  # type: ignore[misc]
        self._base = (self.host or "").rstrip("/")
        protocol = PROTOCOL(UserContext(LOAD, self._rng, PROMPTS, self._base, self._get))
        # the protocol's bound methods, looked up once: nothing per request but the calls
        self._body = protocol.body
        self._read = protocol.read
        self._headers = with_headers(protocol.headers, CONNECTION_HEADERS)
        self._name = protocol.path
        self._url = self._base + self._name
        # The inference requests go to the user's HTTP client for the host directly, not
        # through the user agent: no cookies, redirects, retries or status checks to do
        # (every status is recorded), and about a quarter less client time per request.
        url = URL(self._url)
        self._http = agent.clientpool.get_client(url)
        self._uri = getattr(url, "quoted_uri", url.request_uri)

    def _get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` of the host through the user agent (a protocol's metadata)."""
        url = self._base + path
        response = self.client.client.urlopen(
            url, method="GET", headers={**CONNECTION_HEADERS, "Accept": "application/json"}
        )
        try:
            body = response.read()
        finally:
            response.release()
        return response.status_code, bytes(body)

    def _measured_request(
        self, scheduled: float | None = None, dispatched: float | None = None
    ) -> bool:
        """One request, one record; ``scheduled`` (unix seconds, open loop) starts its clock.

        Open loop: the generator's lag (``scheduled`` to ``dispatched``) and the wait in the
        client queue (``dispatched`` to now) are recorded apart. True when a response came
        (any status)."""
        now, perf = time.time(), time.perf_counter()
        start = now if scheduled is None else min(scheduled, now)
        phase = PHASES.at(start - self._t0)
        m = Measurement(start=start, started=perf - (now - start), phase=phase)
        if scheduled is not None:
            dispatched = min(max(start, now if dispatched is None else dispatched), now)
            m.lag_ms = (dispatched - start) * 1000.0
            m.queue_ms = (now - dispatched) * 1000.0
        try:
            self._exchange(m)
        except Exception as exc:  # a bug in the measuring code: still one record
            log.exception("measuring a request failed")
            m.error = m.error or one_line(f"client error: {type(exc).__name__}: {exc}")
        except BaseException:  # killed at exit after --stop-timeout (GreenletExit)
            m.error = m.error or "cancelled: load stopped"
            self._finish(m)
            raise
        self._finish(m)
        return m.status != 0

    def _exchange(self, m: Measurement) -> None:
        response = None
        try:
            body = self._body()  # may ask the server first (the chat users' model)
            response = self._http.request("POST", self._uri, body=body, headers=self._headers)
            m.status = response.status_code
            replica = response.get(REPLICA_HEADER)
            m.replica = replica if isinstance(replica, str) else ""
            if m.status >= 400:
                excerpt = response.read(ERROR_BODY_BYTES)
                m.received = len(excerpt)
                m.error = http_error(m.status, excerpt)
                m.elapsed = time.perf_counter() - m.started
                return
            self._read(m, response)
        except (
            OSError,
            HTTPParseError,
            ClientConnectionError,
            gevent.Timeout,
            RequestNotSent,
        ) as exc:
            m.error = describe(exc)
        finally:
            if response is not None:
                response.release()  # closes the socket unless the body was read to its end

    def _finish(self, m: Measurement) -> None:
        record(m, self.environment, self._name, self._url)


def not_sent(scheduled: float, t0: float, now: float) -> Measurement:
    """An open-loop arrival the generator could not send (it fell too far behind, or the
    load stopped first): its record starts at ``scheduled`` and lasts its lag."""
    m = Measurement(start=scheduled, started=0.0, phase=PHASES.at(scheduled - t0), error=NOT_SENT)
    m.elapsed = max(0.0, now - scheduled)
    m.lag_ms = m.elapsed * 1000.0
    return m


def record(m: Measurement, environment: Environment, name: str, url: str) -> None:
    """``m``'s row of ``requests.csv``, and its entry in Locust's statistics."""
    elapsed = m.elapsed if m.elapsed is not None else time.perf_counter() - m.started
    latency_ms = elapsed * 1000.0
    ttft, queue, lag = m.ttft_ms, m.queue_ms, m.lag_ms
    ROWS.add(
        ROW
        % (
            m.start,
            m.start + elapsed,
            latency_ms,
            "" if ttft is None else f"{ttft:.3f}",
            m.output_tokens,
            m.status,
            csv_field(m.error) if m.error else "",
            cached_field(m.replica),
            cached_field(m.phase),
            "" if queue is None else f"{queue:.3f}",
            "" if lag is None else f"{lag:.3f}",
        )
    )
    try:
        environment.events.request.fire(
            request_type="POST",
            name=name,
            response_time=latency_ms,
            response_length=m.received,
            response=None,
            context=NO_CONTEXT,
            exception=RequestFailed(m.error) if m.error else None,
            start_time=m.start,
            url=url,
        )
    except Exception:
        log.exception("reporting a request to Locust failed")
