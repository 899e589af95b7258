"""The recording user: one request of the configured protocol, one row of ``requests.csv``.

Imported only inside the Locust process (by the locustfile, which adds the closed- and
open-loop users on top): it imports locust and gevent. :class:`RecordingUser` sends a
request through its HTTP client directly, reads the answer (a whole completion, an SSE
stream until the first token and then at once, or a KServe v2 inference response) and
leaves exactly one record and one entry in Locust's statistics per request, failures and
requests cut short by a stop included.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import gevent
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient.url import URL
from geventhttpclient.useragent import ConnectionError as ClientConnectionError
from locust import FastHttpUser
from locust.env import Environment

from harness.load.rowbatch import ROW, RowBatcher, cached_field
from harness.load.sampling import draw_length, v2_payload
from harness.load.sse import classify_line, http_error, one_line, quick_kind
from harness.load.userconfig import (
    BODY_TEMPLATE,
    LOAD,
    MAX_TOKENS,
    PHASES,
    PROMPT_WORDS,
    PROMPTS,
    RECORDS_PATH,
    STREAM,
    T0,
    V2,
    V2_MODEL,
)
from harness.records import REPLICA_HEADER, RecordWriter, csv_field

log = logging.getLogger(__name__)

PATH = "/v1/completions"
V2_PATH = "/v2/models/{model}/infer"
V2_META_PATH = "/v2/models/{model}"
#: Every status is a response to record, never an exception inside the client.
ALL_STATUSES = frozenset(range(100, 600))
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "text/event-stream",
    "Accept-Encoding": "identity",
}
ERROR_BODY_BYTES = 1024
#: ``"completion_tokens": N`` in an OpenAI completion's usage block: found by a plain
#: search from the end (where ``usage`` is), then this pattern matched at that point (a
#: regex search through the whole body cost about 3% of the client's time per request).
_COMPLETION_TOKENS_KEY = b'"completion_tokens"'
_COLON_NUMBER = re.compile(rb"\s*:\s*(\d+)")
#: Locust's per-request context: none (the record carries what the harness needs).
NO_CONTEXT: dict[str, Any] = {}
#: Every row of this process, batched per turn of gevent's loop; what is left at exit too.
ROWS = RowBatcher(RecordWriter(RECORDS_PATH))
atexit.register(ROWS.flush)


class RequestFailed(Exception):
    """What Locust's statistics see for a failed request: the record's error text."""

    def __repr__(self) -> str:
        return str(self)


@dataclass(slots=True)
class Measurement:
    start: float  # unix seconds
    started: float  # perf_counter at start
    phase: str
    status: int = 0
    error: str = ""
    ttft_ms: float | None = None
    output_tokens: int = 0
    replica: str = ""
    received: int = 0  # body bytes read
    elapsed: float | None = None  # seconds, set when the response is complete
    queue_ms: float | None = None  # open loop: wait in the client queue before sending


def describe(exc: BaseException) -> str:
    """Short error text for a failed request; timeouts are always exactly ``timeout``."""
    original = getattr(exc, "original", None)
    while isinstance(exc, ClientConnectionError) and isinstance(original, BaseException):
        exc, original = original, getattr(original, "original", None)
    if isinstance(exc, TimeoutError | gevent.Timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, HTTPConnectionClosed):
        return "connection closed"
    if isinstance(exc, HTTPParseError):
        return one_line(f"bad response: {exc}")
    return one_line(f"{type(exc).__name__}: {exc}")


class RecordingUser(FastHttpUser):
    """Sends one request of the configured protocol and records it (base of both modes).

    Protocols: ``openai-stream`` (SSE ``/v1/completions``, TTFT and tokens as they arrive),
    ``openai`` (the whole completion at once, tokens from ``usage``) and ``kserve-v2``
    (``POST /v2/models/{model}/infer`` with inputs built from the model's metadata).
    """

    abstract = True
    network_timeout = LOAD.request_timeout_s
    connection_timeout = LOAD.request_timeout_s
    max_retries = 0
    _numbers = itertools.count()

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._rng = random.Random(f"{LOAD.seed}:{next(self._numbers)}")
        agent = self.client.client
        agent.valid_response_codes = ALL_STATUSES  # type: ignore[misc]
        agent.redirect_response_codes = frozenset()  # type: ignore[misc]
        self._base = (self.host or "").rstrip("/")
        self._name = V2_PATH.format(model=V2_MODEL) if V2 else PATH
        self._url = self._base + self._name
        # The inference requests go to the user's HTTP client for the host directly, not
        # through the user agent: no cookies, redirects, retries or status checks to do
        # (every status is recorded), and about a quarter less client time per request.
        url = URL(self._url)
        self._http = agent.clientpool.get_client(url)
        self._uri = getattr(url, "quoted_uri", url.request_uri)

    def _body(self) -> str:
        if V2:
            return self._rng.choice(_v2_payloads(self))
        rng = self._rng
        words = PROMPT_WORDS if PROMPT_WORDS is not None else draw_length(LOAD.prompt_words, rng)
        max_tokens = MAX_TOKENS if MAX_TOKENS is not None else draw_length(LOAD.max_tokens, rng)
        # what json.dumps of the whole object gives (WORDS need no escaping), at a fraction
        # of its cost per request
        return BODY_TEMPLATE % (PROMPTS.prompt(words), max_tokens)

    def _measured_request(self, scheduled: float | None = None) -> bool:
        """One request, one record; ``scheduled`` (unix seconds, open loop) starts its clock.

        True when a response came (any status)."""
        now, perf = time.time(), time.perf_counter()
        start = now if scheduled is None else min(scheduled, now)
        m = Measurement(start=start, started=perf - (now - start), phase=PHASES.at(start - T0))
        m.queue_ms = (now - start) * 1000.0 if scheduled is not None else None
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
        body = self._body()
        response = None
        try:
            response = self._http.request("POST", self._uri, body=body, headers=HEADERS)
            m.status = response.status_code
            replica = response.get(REPLICA_HEADER)
            m.replica = replica if isinstance(replica, str) else ""
            if m.status >= 400:
                excerpt = response.read(ERROR_BODY_BYTES)
                m.received = len(excerpt)
                m.error = http_error(m.status, excerpt)
                m.elapsed = time.perf_counter() - m.started
                return
            if not STREAM:
                self._read_whole(m, response)
                return
            self._read_events(m, response)
            if m.error:
                return
            # the end of the chunked body after [DONE], so the connection can be reused
            with contextlib.suppress(OSError, HTTPParseError, gevent.Timeout):
                m.received += len(response.read())
        except (OSError, HTTPParseError, ClientConnectionError, gevent.Timeout) as exc:
            m.error = describe(exc)
        finally:
            if response is not None:
                response.release()  # closes the socket unless the body was read to its end

    def _read_whole(self, m: Measurement, response: Any) -> None:
        """A non-streaming answer: the OpenAI completion or the v2 inference response."""
        body = response.read()
        m.received = len(body)
        m.elapsed = time.perf_counter() - m.started
        if not V2:
            # the usual well-formed answer: read its token count without parsing it all
            at = body.rfind(_COMPLETION_TOKENS_KEY)
            found = _COLON_NUMBER.match(body, at + len(_COMPLETION_TOKENS_KEY)) if at >= 0 else None
            if found is not None and b'"choices"' in body:
                m.output_tokens = int(found.group(1))
                return
        try:
            doc = json.loads(body)
        except ValueError:
            m.error = "bad response: " + one_line(body.decode("utf-8", "replace"))
            return
        if not isinstance(doc, dict):
            m.error = "bad response: not a JSON object"
        elif V2:
            if not isinstance(doc.get("outputs"), list):
                m.error = "bad response: no outputs"
        else:
            usage = doc.get("usage") or {}
            tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
            if isinstance(tokens, int):
                m.output_tokens = tokens
            elif not doc.get("choices"):
                m.error = "bad response: no choices"

    def _read_events(self, m: Measurement, stream: Any) -> None:
        """Read the SSE stream: event by event until the first token, then the rest at once.

        Until the first token, each read returns as soon as a line, then a whole event, has
        arrived (the first line tells whether the server ends lines with ``\\n`` or
        ``\\r\\n``), so TTFT is when the first token reached the client. After it only the
        number of tokens and the end of the stream count, so the rest is read in one go: a
        read per event had cost the streaming user more than all its other bookkeeping. A
        body that ends without ``[DONE]``, or breaks, keeps what came: its tokens count and
        the record fails with ``stream ended early``.
        """
        sep = b"\n"
        while m.ttft_ms is None:
            block = _read_stream(stream, sep)
            if not block:
                break
            m.received += len(block)
            if sep == b"\n":
                sep = b"\r\n\r\n" if block.endswith(b"\r\n") else b"\n\n"
            if self._events(m, block):
                return
        rest = _read_stream(stream, None)
        m.received += len(rest)
        if not (rest and self._events(m, rest)):
            m.error = m.error or "stream ended early"

    def _events(self, m: Measurement, block: bytes) -> bool:
        """Count the tokens in the lines of ``block``; True once the stream is over (done or
        an error)."""
        for line in block.split(b"\n"):
            if len(line) <= 1:  # the blank line after each event
                continue
            kind, text = quick_kind(line), ""
            if kind is None:
                kind, text = classify_line(line)
            if kind == "token":
                m.output_tokens += 1
                if m.ttft_ms is None:
                    m.ttft_ms = (time.perf_counter() - m.started) * 1000.0
            elif kind == "done":
                m.elapsed = time.perf_counter() - m.started
                return True
            elif kind == "error":
                m.error = text
                return True
        return False

    def _finish(self, m: Measurement) -> None:
        elapsed = m.elapsed if m.elapsed is not None else time.perf_counter() - m.started
        latency_ms = elapsed * 1000.0
        ttft, queue = m.ttft_ms, m.queue_ms
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
            )
        )
        try:
            self.environment.events.request.fire(
                request_type="POST",
                name=self._name,
                response_time=latency_ms,
                response_length=m.received,
                response=None,
                context=NO_CONTEXT,
                exception=RequestFailed(m.error) if m.error else None,
                start_time=m.start,
                url=self._url,
            )
        except Exception:
            log.exception("reporting a request to Locust failed")


def _read_stream(stream: Any, sep: bytes | None) -> bytes:
    """The next line or event up to ``sep``, or (``None``) the rest of the body; ``b""`` at
    its end. When the connection closes or breaks first, what had arrived (a timeout
    propagates)."""
    try:
        return bytes(stream.readline(sep) if sep is not None else stream.read())
    except (HTTPParseError, ConnectionResetError, BrokenPipeError) as exc:
        log.debug("stream cut: %s", describe(exc))
    with contextlib.suppress(OSError, HTTPParseError):
        return bytes(stream.read())  # the response was released: what it had buffered
    return b""


_V2_CACHE: dict[str, list[str]] = {}
#: Distinct random input payloads per v2 model (built once; large images are slow to encode).
V2_VARIANTS = 4


def _v2_payloads(user: RecordingUser) -> list[str]:
    """Request bodies for the v2 model, built from ``GET /v2/models/{model}`` metadata."""
    if user._base in _V2_CACHE:
        return _V2_CACHE[user._base]
    url = user._base + V2_META_PATH.format(model=V2_MODEL)
    response = user.client.client.urlopen(url, method="GET", headers={"Accept": "application/json"})
    try:
        body = response.read()
    finally:
        response.release()
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: HTTP {response.status_code}: {one_line(body.decode())}")
    inputs = json.loads(body)["inputs"]
    rng = random.Random(f"{LOAD.seed}:v2")
    payloads = [json.dumps(v2_payload(inputs, rng)) for _ in range(V2_VARIANTS)]
    _V2_CACHE[user._base] = payloads
    return payloads
