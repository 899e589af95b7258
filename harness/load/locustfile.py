"""The Locust side of the load: recording users (OpenAI, KServe v2), open and closed loop.

Runs only inside a Locust process started by :class:`harness.load.runner.LocustRunner`
(``python -m locust -f harness/load/locustfile.py``), never imported by the harness. The
config comes from the JSON file named by ``GPUCHAOS_LOAD_CONFIG``.

Every request becomes exactly one row of ``requests.csv`` (written as it ends) and one
entry in Locust's own statistics, failures and requests cut short by a stop included.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import random
import re
import signal
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.lock
from gevent.pool import Group
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient.url import URL
from geventhttpclient.useragent import ConnectionError as ClientConnectionError
from locust import FastHttpUser, LoadTestShape, constant, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING
from locust.stats import CSV_STATS_INTERVAL_SEC

from harness.load.distributed import RECORDS_ENV, worker_slot
from harness.load.loadconfig import CONFIG_ENV, read_load_config
from harness.load.sampling import PromptSource, arrivals, draw_length, longest, v2_payload
from harness.load.shapes import PhaseClock, next_change, users_at
from harness.load.sse import classify_line, http_error, one_line, quick_kind
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

WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "gpu", "memory", "tensor",
    "kernel", "batch", "token", "stream", "latency", "replica", "node", "cluster", "spike",
    "traffic", "model", "layer", "weight", "cache", "queue", "decode", "prefill", "request",
    "server", "client", "chaos", "load", "test", "recover", "fault", "budget", "error",
    "signal", "window", "sample", "metric", "graph", "shard", "pool",
)  # fmt: skip

_config_path = os.environ.get(CONFIG_ENV)
if not _config_path:
    raise RuntimeError(f"{CONFIG_ENV} is not set: this locustfile is started by the harness")
CONFIG = read_load_config(_config_path)
LOAD = CONFIG.load
SHAPE = LOAD.shape
PHASES = PhaseClock(SHAPE)
T0 = CONFIG.t0
#: A worker of a distributed load writes its own records file (see harness.load.distributed).
RECORDS = RecordWriter(os.environ.get(RECORDS_ENV) or CONFIG.records_path)
#: This process's index among the workers, and their number; (0, 1) when alone.
WORKER, WORKERS = worker_slot()
PROMPTS = PromptSource(WORDS, LOAD.seed, longest(LOAD.prompt_words), WORKER, WORKERS)
V2 = LOAD.user == "kserve-v2"
STREAM = LOAD.user == "openai-stream"
MODEL = LOAD.model or "gpuchaos"
V2_MODEL = LOAD.model or "classifier"
#: An OpenAI completion body with the prompt (JSON string) and max_tokens left to fill in.
BODY_TEMPLATE = (
    f'{{"model": {json.dumps(MODEL)}, "prompt": "%s", "max_tokens": %d, '
    f'"stream": {json.dumps(STREAM)}}}'
)
#: ``"completion_tokens": N`` in an OpenAI completion's usage block: found by a plain
#: search from the end (where ``usage`` is), then this pattern matched at that point (a
#: regex search through the whole body cost about 3% of the client's time per request).
_COMPLETION_TOKENS_KEY = b'"completion_tokens"'
_COLON_NUMBER = re.compile(rb"\s*:\s*(\d+)")
#: Requests in flight, each in its own greenlet (see ``OpenAIStreamUser.complete``).
INFLIGHT = Group()
#: Set once Locust starts stopping the run (end of the shape or SIGINT).
STOPPING = gevent.event.Event()
#: A user-count change due within this many seconds is waited for inside ``tick``.
TICK_LOOKAHEAD_S = 1.1


#: Locust's per-request context: none (the record carries what the harness needs).
NO_CONTEXT: dict[str, Any] = {}
#: Fixed lengths (the usual case) skip the draw.
PROMPT_WORDS = LOAD.prompt_words if isinstance(LOAD.prompt_words, int) else None
MAX_TOKENS = LOAD.max_tokens if isinstance(LOAD.max_tokens, int) else None


#: One row of ``requests.csv``, in the order of ``COLUMNS + OPTIONAL_COLUMNS``.
ROW = "%.6f,%.6f,%.3f,%s,%d,%d,%s,%s,%s,%s\r\n"


class RowBatcher:
    """Rows of ``requests.csv`` finished in one turn of gevent's loop, written in one write.

    A row is handed to the OS at the start of the next loop turn, before the loop waits for
    any I/O: as good as written when its request ends (a reader tailing the file sees it at
    once), while a busy client makes one ``write(2)`` for all requests that finished
    together instead of one each (a write per row cost about 3% of the client's time per
    request). ``flush`` at exit writes whatever is left.
    """

    def __init__(self, writer: RecordWriter) -> None:
        self._writer = writer
        self._rows: list[str] = []

    def add(self, row: str) -> None:
        if not self._rows:
            gevent.get_hub().loop.run_callback(self.flush)
        self._rows.append(row)

    def flush(self) -> None:
        if not self._rows:
            return
        text = "".join(self._rows)
        self._rows.clear()
        try:
            self._writer.write_line(text)
        except Exception:
            log.exception("writing request records failed: %s", text.rstrip())


ROWS = RowBatcher(RECORDS)
atexit.register(ROWS.flush)
#: CSV fields of replica ids and phases seen so far (a handful; reset if it grows).
_FIELDS: dict[str, str] = {}


def _field(text: str) -> str:
    """``csv_field`` of a replica id or phase, remembered."""
    field = _FIELDS.get(text)
    if field is None:
        if len(_FIELDS) > 1024:
            _FIELDS.clear()
        field = _FIELDS[text] = csv_field(text)
    return field


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
                _field(m.replica),
                _field(m.phase),
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


class ClosedLoopUser(RecordingUser):
    """Closed loop: each user sends a request, waits for the answer (and ``wait_s``), repeats.

    The requests run in one greenlet per user (in ``INFLIGHT``), not in the user's own, so a
    user stopped mid-request (a ramp-down, the end of the run, a kill after
    ``--stop-timeout``) never cuts it short: it completes and is recorded, and the loop starts
    nothing after it. One long-lived greenlet rather than one per request: spawning and joining
    a greenlet per request cost about a sixth of the client's time per request.
    """

    wait_time = constant(LOAD.wait_s)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._stop_requested = False

    def stop(self, force: bool = False) -> bool:
        self._stop_requested = True  # Locust stops this user: no new request from its loop
        return bool(super().stop(force))

    @task
    def complete(self) -> None:
        if STOPPING.is_set() or self._stop_requested:  # the run is ending: start nothing new
            raise StopUser()
        loop = INFLIGHT.spawn(self._request_loop)
        try:
            loop.join()
        finally:  # killed while waiting: the loop finishes its request and ends
            self._stop_requested = True
        raise StopUser()

    def _request_loop(self) -> None:
        wait_s = LOAD.wait_s
        while not (self._stop_requested or STOPPING.is_set()):
            answered = self._measured_request()
            if wait_s > 0:
                gevent.sleep(wait_s)
            elif not answered:
                gevent.sleep(0)  # a failure without I/O wait must not starve other greenlets


class OpenLoopUser(RecordingUser):
    """Open loop: one dispatcher sends requests on a schedule holding the shape's rate.

    Arrivals never wait for answers, so a slow server gets as much load as a fast one. At
    most ``max_in_flight`` requests are on the wire at once (the connection pool); later
    arrivals wait in the client queue, and that wait is both recorded (``queue_ms``) and
    counted in their latency, which starts at the scheduled send time.
    """

    wait_time = constant(0)
    concurrency = LOAD.max_in_flight

    @task
    def dispatch(self) -> None:
        slots = gevent.lock.BoundedSemaphore(LOAD.max_in_flight)
        rng = random.Random(f"{LOAD.seed}:arrivals")
        # workers draw the whole schedule from 0 and each sends every WORKERS-th arrival
        begin = max(0.0, time.time() - T0) if WORKERS == 1 else 0.0
        for number, offset in enumerate(arrivals(SHAPE, LOAD.arrivals == "poisson", rng, begin)):
            if number % WORKERS != WORKER:
                continue
            if STOPPING.is_set():
                break
            delay = T0 + offset - time.time()
            if delay > 0:
                gevent.sleep(delay)
            if STOPPING.is_set():
                break
            INFLIGHT.spawn(self._queued_request, T0 + offset, slots)
        STOPPING.wait()
        raise StopUser()

    def _queued_request(self, scheduled: float, slots: gevent.lock.BoundedSemaphore) -> None:
        left = LOAD.request_timeout_s - (time.time() - scheduled)
        if left <= 0 or not slots.acquire(timeout=left):
            m = Measurement(
                start=scheduled,
                started=time.perf_counter() - (time.time() - scheduled),
                phase=PHASES.at(scheduled - T0),
                error="timeout: client queue full",
            )
            m.queue_ms = (time.time() - scheduled) * 1000.0
            self._finish(m)
            return
        try:
            self._measured_request(scheduled)
        finally:
            slots.release()


# Only the mode's own user class runs (Locust spawns every non-abstract User of the file).
ClosedLoopUser.abstract = LOAD.mode != "closed"
OpenLoopUser.abstract = LOAD.mode != "open"


class GpuchaosShape(LoadTestShape):
    """The configured shape on the harness's clock; ends after the shape's duration.

    The clock is the harness's ``t0`` (not Locust's start), so user counts, the phase in
    each record and the phase events on the timeline agree. The first tick waits for
    ``t0``; a change due before the next tick (Locust ticks about once a second) is waited
    for, so counts change on time even for boundaries that are not whole seconds. In open
    loop there is a single dispatcher user for the whole load.
    """

    def tick(self) -> tuple[int, float] | None:
        now = time.time() - T0
        change = next_change(SHAPE, max(now, 0.0))
        if now < 0 or (change is not None and change - now < TICK_LOOKAHEAD_S):
            target = 0.0 if now < 0 else change
            assert target is not None
            gevent.sleep(max(0.0, target - now))
            now = max(time.time() - T0, target)
        users = users_at(SHAPE, now)
        if users is None:
            return None
        if LOAD.mode == "open":
            return LOAD.workers or 1, SHAPE.spawn_rate  # one dispatcher per worker
        return users, SHAPE.spawn_rate


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    """SIGINT ends the run the way the end of the shape does.

    The handler runs in a greenlet of its own (Python's default would raise
    KeyboardInterrupt in whatever greenlet runs, possibly a user mid-request) and stops
    the shape greenlet; Locust's headless main then stops the users (letting in-flight
    requests finish within ``--stop-timeout``) and writes its summary, exactly once.
    """

    def _stop() -> None:
        runner = environment.runner
        if runner is None or runner.state in (STATE_CLEANUP, STATE_STOPPING, STATE_STOPPED):
            return
        log.warning("SIGINT: stopping the load")
        if runner.shape_greenlet is not None:
            runner.shape_greenlet.kill(block=False)
        else:
            runner.quit()

    gevent.signal_handler(signal.SIGINT, _stop)


@events.test_stopping.add_listener
def _on_test_stopping(**_kwargs: Any) -> None:
    STOPPING.set()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    # Requests still in flight (their users are gone) get --stop-timeout to finish, then
    # are cancelled; either way each leaves its record.
    if len(INFLIGHT):
        INFLIGHT.join(timeout=environment.stop_timeout or 0.0)
        INFLIGHT.kill(block=True, timeout=5.0)
    ROWS.flush()
    # Locust's CSV writer refreshes the stats files once a second and not at exit: give it
    # one more pass so the summary holds every request.
    options = environment.parsed_options
    if options is not None and getattr(options, "csv_prefix", None):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.25)
