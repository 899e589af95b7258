"""The protocols of ``load.user``: what one request is, and how its answer becomes a record.

Why a registry: the recording user (:mod:`harness.load.recording`) sends requests and writes
their records the same way whatever the server speaks; only the request's path and body,
and how the answer is read (tokens, TTFT, errors), differ. Each protocol says that once, in
a :class:`Protocol` subclass; the built-in ones (``openai-stream``, ``openai``,
``openai-chat-stream``, ``openai-chat``, ``kserve-v2``) are registered here by name with
:func:`register_protocol`, and ``load.user``
may also name a subclass in a module of your own as ``package.module:ClassName``.
:func:`protocol_class` resolves the name once per Locust process; each user makes one
instance and keeps its bound :meth:`~Protocol.body` and :meth:`~Protocol.read`, so the
per-request path has no lookup and no branch on the protocol.

Imported only inside the Locust process (it imports gevent): ``harness/config/load.py``
checks the names without importing this module.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import gevent
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient.useragent import ConnectionError as ClientConnectionError

from harness.config import LoadSpec
from harness.errors import ConfigError
from harness.load.modelname import RequestNotSent, discovered_model
from harness.load.sampling import PromptSource, draw_length, v2_payload
from harness.load.sse import classify_line, one_line, quick_kind

log = logging.getLogger(__name__)

#: The headers of every built-in protocol's requests.
HEADERS: Mapping[str, str] = {
    "Content-Type": "application/json",
    "Accept": "text/event-stream",
    "Accept-Encoding": "identity",
}


@dataclass(slots=True)
class Measurement:
    """One request as it is measured; the recording user turns it into one record."""

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
    queue_ms: float | None = None  # open loop: wait in the client queue, dispatch to sent
    lag_ms: float | None = None  # open loop: generator lag, scheduled time to dispatch


@dataclass(frozen=True, slots=True)
class UserContext:
    """What a protocol gets of the Locust user that sends its requests."""

    load: LoadSpec  # the load block of the experiment
    rng: random.Random  # the user's own seeded random numbers
    prompts: PromptSource  # this process's prompt text (shared by its users)
    base_url: str  # the host, without a trailing slash
    get: Callable[[str], tuple[int, bytes]]  # GET a path of the host: (status, body)


class Protocol:
    """One request of a protocol: its path, its body, and how its answer is read.

    A user makes one instance at its start (``__init__`` may read ``load``, but must send
    nothing). Per request it sends ``POST path`` with :meth:`body` and ``headers``; a
    response with status 400 or more is recorded as an HTTP error without calling
    :meth:`read`; any other is handed to :meth:`read`, which fills in the
    :class:`Measurement`: ``received`` (body bytes), ``output_tokens``, ``ttft_ms`` (streams),
    ``error`` (a failed request) and ``elapsed`` (when the answer was complete; left unset,
    the time the record is written). Read the body to its end, so the connection is reused.
    Connection errors, timeouts and bad HTTP raised while sending, in :meth:`read`, or in
    :meth:`body` (a GET it made of the host), and a :class:`RequestNotSent` from
    :meth:`body`, are recorded by the user with their text; any other exception as a client
    error.
    """

    #: The name it is registered under (set by :func:`register_protocol`).
    name: ClassVar[str] = ""
    #: The request path; also the request's name in Locust's statistics.
    path: str = "/"
    headers: Mapping[str, str] = HEADERS

    def __init__(self, user: UserContext) -> None:
        self.load = user.load
        self.rng = user.rng
        self.prompts = user.prompts
        self.base_url = user.base_url
        self.get = user.get

    def body(self) -> str | bytes:
        """The next request's body."""
        raise NotImplementedError

    def read(self, m: Measurement, response: Any) -> None:
        """Read a response (geventhttpclient's: ``read([n])``, ``readline(sep)``) into ``m``."""
        raise NotImplementedError


P = TypeVar("P", bound=type[Protocol])
_PROTOCOLS: dict[str, type[Protocol]] = {}


class DuplicateProtocol(ValueError):
    """A protocol name registered twice (a programming error)."""


def register_protocol(name: str) -> Callable[[P], P]:
    """Class decorator: register a :class:`Protocol` subclass under ``name``."""

    def add(cls: P) -> P:
        known = _PROTOCOLS.get(name)
        if known is not None and known is not cls:
            raise DuplicateProtocol(
                f"protocol {name!r} is registered twice: {_qualname(known)} and {_qualname(cls)}"
            )
        cls.name = name
        _PROTOCOLS[name] = cls
        return cls

    return add


def registered() -> dict[str, type[Protocol]]:
    """The registered protocols by name."""
    return dict(_PROTOCOLS)


#: Where ``load.user`` came from, as the Locust process sees it.
_SOURCE = "the load config"


def protocol_class(user: str) -> type[Protocol]:
    """The protocol of ``load.user``: a registered name or ``package.module:ClassName``."""
    if ":" not in user:
        try:
            return _PROTOCOLS[user]
        except KeyError:
            known = ", ".join(sorted(_PROTOCOLS))
            problem = f"no protocol {user!r} (known: {known})"
            raise ConfigError(_SOURCE, "load.user", problem) from None
    module_name, _, class_name = user.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(_SOURCE, "load.user", f"{user!r}: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Protocol)):
        raise ConfigError(_SOURCE, "load.user", f"{user!r} is no subclass of {_qualname(Protocol)}")
    return cls


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


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
    if isinstance(exc, RequestNotSent):
        return one_line(str(exc))
    return one_line(f"{type(exc).__name__}: {exc}")


def json_object(m: Measurement, body: bytes) -> dict[str, Any] | None:
    """``body`` parsed as a JSON object; ``None``, with the record's error set, when it is not."""
    try:
        doc = json.loads(body)
    except ValueError:
        m.error = "bad response: " + one_line(body.decode("utf-8", "replace"))
        return None
    if not isinstance(doc, dict):
        m.error = "bad response: not a JSON object"
        return None
    return doc


# -- the built-in protocols ---------------------------------------------------------------------

#: ``"completion_tokens": N`` in an OpenAI completion's usage block: found by a plain
#: search from the end (where ``usage`` is), then this pattern matched at that point (a
#: regex search through the whole body cost about 3% of the client's time per request).
_COMPLETION_TOKENS_KEY = b'"completion_tokens"'
_COLON_NUMBER = re.compile(rb"\s*:\s*(\d+)")


@register_protocol("openai")
class OpenAICompletion(Protocol):
    """``POST /v1/completions``, the whole completion at once; tokens from ``usage``."""

    path = "/v1/completions"
    stream = False
    #: The body with its model and stream flag to fill in (str.format), then the prompt and
    #: max_tokens (``%``): what json.dumps of the whole object gives (the prompt's words need
    #: no escaping), at a fraction of its cost per request.
    body_format = '{{"model": {model}, "prompt": "%s", "max_tokens": %d, "stream": {stream}}}'
    #: The model named when ``load.model`` is unset; ``None``: the first of ``GET /v1/models``.
    default_model: ClassVar[str | None] = "gpuchaos"

    def __init__(self, user: UserContext) -> None:
        super().__init__(user)
        model = self.load.model or self.default_model
        self._template = None if model is None else self._format(model)
        # fixed lengths (the usual case) skip the draw
        words, tokens = self.load.prompt_words, self.load.max_tokens
        self._words = words if isinstance(words, int) else None
        self._max_tokens = tokens if isinstance(tokens, int) else None
        self._prompt = self.prompts.prompt

    def _format(self, model: str) -> str:
        name = json.dumps(model).replace("%", "%%")
        return self.body_format.format(model=name, stream=json.dumps(self.stream))

    def body(self) -> str:
        template = self._template
        if template is None:  # the model is asked of the server on the first request
            template = self._template = self._format(discovered_model(self.base_url, self.get))
        words = self._words
        if words is None:
            words = draw_length(self.load.prompt_words, self.rng)
        max_tokens = self._max_tokens
        if max_tokens is None:
            max_tokens = draw_length(self.load.max_tokens, self.rng)
        return template % (self._prompt(words), max_tokens)

    def read(self, m: Measurement, response: Any) -> None:
        body = response.read()
        m.received = len(body)
        m.elapsed = time.perf_counter() - m.started
        # the usual well-formed answer: read its token count without parsing it all
        at = body.rfind(_COMPLETION_TOKENS_KEY)
        found = _COLON_NUMBER.match(body, at + len(_COMPLETION_TOKENS_KEY)) if at >= 0 else None
        if found is not None and b'"choices"' in body:
            m.output_tokens = int(found.group(1))
            return
        doc = json_object(m, body)
        if doc is None:
            return
        usage = doc.get("usage") or {}
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if isinstance(tokens, int):
            m.output_tokens = tokens
        elif not doc.get("choices"):
            m.error = "bad response: no choices"


@register_protocol("openai-stream")
class OpenAIStream(OpenAICompletion):
    """SSE ``POST /v1/completions``: TTFT and tokens as they arrive."""

    stream = True

    def read(self, m: Measurement, response: Any) -> None:
        """Read the SSE stream: event by event until the first token, then the rest at once.

        Until the first token, each read returns as soon as a line, then a whole event, has
        arrived (the first line tells whether the server ends lines with ``\\n`` or
        ``\\r\\n``), so TTFT is when the first token reached the client. After it only the
        number of tokens and the end of the stream count, so the rest is read in one go: a
        read per event had cost the streaming user more than all its other bookkeeping. A
        body that ends without ``[DONE]``, or breaks, keeps what came: its tokens count and
        the record fails with ``stream ended early``. After ``[DONE]`` the end of the
        chunked body is read too, so the connection can be reused.
        """
        sep = b"\n"
        over = False
        while m.ttft_ms is None:
            block = _read_stream(response, sep)
            if not block:
                break
            m.received += len(block)
            if sep == b"\n":
                sep = b"\r\n\r\n" if block.endswith(b"\r\n") else b"\n\n"
            if self._events(m, block):
                over = True
                break
        if not over:
            rest = _read_stream(response, None)
            m.received += len(rest)
            if not (rest and self._events(m, rest)):
                m.error = m.error or "stream ended early"
        if m.error:
            return
        with contextlib.suppress(OSError, HTTPParseError, gevent.Timeout):
            m.received += len(response.read())

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


#: The chat body (``choices[0].message.content`` back, or ``delta.content`` chunks).
_CHAT_FORMAT = (
    '{{"model": {model}, "messages": [{{"role": "user", "content": "%s"}}], '
    '"max_tokens": %d, "stream": {stream}}}'
)


@register_protocol("openai-chat")
class OpenAIChat(OpenAICompletion):
    """``POST /v1/chat/completions``, the whole answer at once; tokens from ``usage``.

    ``load.model`` unset: the first model of ``GET /v1/models`` (once per process)."""

    path = "/v1/chat/completions"
    body_format = _CHAT_FORMAT
    default_model = None


@register_protocol("openai-chat-stream")
class OpenAIChatStream(OpenAIStream):
    """SSE ``POST /v1/chat/completions``: TTFT at the first non-empty ``delta.content``, a
    token per content chunk, or the ``usage`` block's count when the server sends one."""

    path = "/v1/chat/completions"
    body_format = _CHAT_FORMAT
    default_model = None

    def _events(self, m: Measurement, block: bytes) -> bool:
        over = super()._events(m, block)
        at = block.rfind(_COMPLETION_TOKENS_KEY)
        found = _COLON_NUMBER.match(block, at + len(_COMPLETION_TOKENS_KEY)) if at >= 0 else None
        if found is not None:
            m.output_tokens = int(found.group(1))
        return over


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


@register_protocol("kserve-v2")
class KServeV2(Protocol):
    """``POST /v2/models/{model}/infer`` with inputs built (seeded) from the model's metadata."""

    #: Distinct random input payloads per model (built once; large images are slow to encode).
    variants = 4
    #: The payloads of each host, built from its metadata once per process.
    _by_host: ClassVar[dict[str, list[str]]] = {}

    def __init__(self, user: UserContext) -> None:
        super().__init__(user)
        self._model = self.load.model or "classifier"
        self.path = f"/v2/models/{self._model}/infer"
        self._payloads = self._by_host.get(self.base_url)

    def body(self) -> str:
        payloads = self._payloads
        if payloads is None:
            payloads = self._payloads = self._fetch_payloads()
        return self.rng.choice(payloads)

    def _fetch_payloads(self) -> list[str]:
        """Request bodies for the model, built from ``GET /v2/models/{model}`` metadata."""
        if self.base_url in self._by_host:
            return self._by_host[self.base_url]
        path = f"/v2/models/{self._model}"
        status, body = self.get(path)
        if status != 200:
            url = self.base_url + path
            raise RuntimeError(f"GET {url}: HTTP {status}: {one_line(body.decode())}")
        inputs = json.loads(body)["inputs"]
        rng = random.Random(f"{self.load.seed}:v2")
        payloads = [json.dumps(v2_payload(inputs, rng)) for _ in range(self.variants)]
        self._by_host[self.base_url] = payloads
        return payloads

    def read(self, m: Measurement, response: Any) -> None:
        body = response.read()
        m.received = len(body)
        m.elapsed = time.perf_counter() - m.started
        doc = json_object(m, body)
        if doc is not None and not isinstance(doc.get("outputs"), list):
            m.error = "bad response: no outputs"
