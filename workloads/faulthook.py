"""The fault hook of the reference servers: how the harness reaches GPU failure modes that no
outside process can cause (a poisoned CUDA context, a throttled GPU, a hang, a neighbour).

Why inside the server: a sticky CUDA error lives in the process's own CUDA context, and a
throttled step is the server's own step; nothing outside the process can produce either
without changing the device for everybody (clocks, power limits). So the harness asks the
server, through a guarded door:

- The hook exists only when the server is given a secret in the environment
  (``GPUCHAOS_FAULT_TOKEN``, non-empty); without it ``/admin/fault`` is a 404 like any
  unknown path. The harness gives every replica a fresh token at start.
- Every call carries ``X-Gpuchaos-Fault-Token``; a missing or wrong token is a 403 (compared
  in constant time).
- A server that binds a non-loopback address refuses to start with the hook (exit 2, one
  line) unless ``--fault-hook-remote`` is given (a Kubernetes pod, whose token comes from a
  Secret).

``POST /admin/fault`` with ``{"kind": ..., "factor": ..., "xid": ..., "mib": ...}`` (``op`` is
accepted as another name for ``kind``); ``GET`` gives the state ``{"poisoned", "xid",
"throttle", "hang", "contend", "hog_mib", "hog_error"}``. Kinds:

- ``poison``: sticky. On CUDA a real device-side assert (an out-of-range index on the GPU)
  poisons the process's context, so every later CUDA call fails with "CUDA error: ...";
  on CPU every forward raises the same text (the stand-in). Inference answers 500 with
  that text; shallow ``/health/live`` still answers 200. Only a restart clears it.
- ``throttle``: each model step is stretched by ``factor`` (a sleep of (factor - 1) x the
  step's own time), as under thermal or power throttling; nothing fails.
- ``hang``: every route but ``/admin/fault`` blocks until ``clear``.
- ``contend``: a neighbour compute loop (matmuls on the device) in the process until ``clear``.
- ``hog``: allocate ``mib`` MiB more inside the process (a tensor on the server's device, every
  byte written) and hold it until ``clear``; hogs add up. Being the process's own memory, it
  is capped like the model's: on CUDA by the memory fraction (workloads/sharing.py) or the MPS
  limit, so a hog beyond raises the real "CUDA out of memory"; on CPU by the RLIMIT_AS the
  platform sets. A hog that does not fit is answered 507 with the allocator's error text
  (``error``, also kept in ``hog_error``) and holds nothing; the server serves on.
- ``clear``: undo everything but the poison (a hog's memory is given back to the device).

Liveness: ``shallow`` answers 200 while the process serves HTTP; ``deep`` runs a tiny
computation on the device (:meth:`FaultHook.deep_probe`) within a time limit and answers 503
when it fails (a poisoned context) or does not finish.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from workloads.hog import MemoryHog

logger = logging.getLogger(__name__)

TOKEN_ENV = "GPUCHAOS_FAULT_TOKEN"
TOKEN_HEADER = "x-gpuchaos-fault-token"
PATH = "/admin/fault"
KINDS = ("poison", "throttle", "hang", "contend", "hog", "clear")
DEFAULT_XID = 79
MAX_FACTOR = 1000.0
MAX_BODY_BYTES = 4096
#: The largest hog one call may ask for (1 TiB: more than any device has).
MAX_HOG_MIB = 2**20
#: What a hog that did not fit is answered (HTTP 507 Insufficient Storage).
HOG_FAILED_STATUS = 507
#: What a poisoned context says (the CPU stand-in says the same, so clients and scorers see
#: one error text wherever the run happens).
CUDA_ASSERT_TEXT = "CUDA error: device-side assert triggered"
#: Seconds a deep liveness probe's computation may take before the probe fails.
DEEP_LIVE_TIMEOUT_S = 2.0
LIVENESS_CHOICES = ("shallow", "deep")


class PoisonedContext(RuntimeError):
    """The CPU stand-in of a sticky CUDA error: raised by every forward once poisoned."""


def is_cuda_error(exc: BaseException) -> bool:
    """True for an error of a poisoned (or otherwise failed) CUDA context."""
    return "CUDA error" in str(exc)


def cuda_error_message(exc: BaseException) -> str:
    """The first line of a CUDA error, from "CUDA error:" on (what clients are answered)."""
    text = str(exc)
    start = text.find("CUDA error")
    line = text[start:] if start >= 0 else text
    return line.splitlines()[0] if line else CUDA_ASSERT_TEXT


def _trigger_device_assert(device: str) -> str | None:
    """Poison this process's CUDA context for real: index a tensor on the GPU out of range,
    which fails a device-side assert; the error is sticky (every later CUDA call fails).
    Returns the error text, None when no error showed (the stand-in flag still holds)."""
    import torch

    dev = torch.device(device)
    data = torch.zeros(4, device=dev)
    index = torch.full((1,), 1 << 20, dtype=torch.long, device=dev)
    try:
        data[index].sum().item()
        torch.cuda.synchronize(dev)
    except RuntimeError as exc:
        return cuda_error_message(exc)
    return None


class FaultHook:
    """The fault state of one server process, read by its engine on every step."""

    def __init__(self) -> None:
        self.device = "cpu"
        self.poisoned = False
        self.xid: int | None = None
        self.error_text = CUDA_ASSERT_TEXT
        self.throttle = 1.0
        self.hang = False
        self._contend_stop: threading.Event | None = None
        self.hog = MemoryHog()
        self._lock = threading.Lock()
        self._probe_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deep-live")
        self._probe: Future[None] | None = None

    # -- the engine's side ---------------------------------------------------------------

    def check(self) -> None:
        """Raise the context's error when poisoned (before a forward; on CUDA the forward
        would fail by itself, this keeps the text the same everywhere)."""
        if self.poisoned:
            raise PoisonedContext(f"{self.error_text} (XID {self.xid})")

    def stretch(self, seconds: float) -> None:
        """Sleep (throttle - 1) x ``seconds`` after a step that took ``seconds``."""
        factor = self.throttle
        if factor > 1.0 and seconds > 0:
            time.sleep((factor - 1.0) * seconds)

    @contextmanager
    def step(self) -> Iterator[None]:
        """Around one model step: fail it when poisoned, stretch it when throttled."""
        self.check()
        t0 = time.perf_counter()
        yield
        self.stretch(time.perf_counter() - t0)

    # -- liveness ------------------------------------------------------------------------

    def deep_probe(self) -> None:
        """A tiny computation on the device, synchronised: raises on a poisoned context."""
        self.check()
        import torch

        dev = torch.device(self.device)
        x = torch.ones(8, 8, device=dev)
        (x @ x).sum().item()

    async def deep_live(self, timeout_s: float = DEEP_LIVE_TIMEOUT_S) -> str | None:
        """Run :meth:`deep_probe` off the event loop within ``timeout_s``: None when it
        passed, else why not. A probe still running from before fails this one at once (a
        stuck device must not pile up threads)."""
        with self._lock:
            if self._probe is not None and not self._probe.done():
                return "the previous deep probe has not finished"
            self._probe = self._probe_pool.submit(self.deep_probe)
            probe = self._probe
        try:
            await asyncio.wait_for(asyncio.wrap_future(probe), timeout_s)
        except TimeoutError:
            return f"the device did not answer within {timeout_s:g} s"
        except Exception as exc:
            return cuda_error_message(exc) if is_cuda_error(exc) else f"{type(exc).__name__}"
        return None

    # -- the admin side ------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "poisoned": self.poisoned,
            "xid": self.xid,
            "throttle": self.throttle,
            "hang": self.hang,
            "contend": self._contend_stop is not None,
            "hog_mib": self.hog.held_bytes / 2**20,
            "hog_error": self.hog.error,
        }

    def apply(
        self, kind: str, factor: float | None = None, xid: int | None = None, mib: float = 0.0
    ) -> str | None:
        """Apply one fault kind (already validated); None, or why it failed (a hog that did
        not fit: the allocator's error)."""
        if kind == "hog":
            return self.hog.allocate(self.device, mib)
        if kind == "poison":
            self._poison(DEFAULT_XID if xid is None else xid)
        elif kind == "throttle":
            self.throttle = float(factor if factor is not None else 2.0)
        elif kind == "hang":
            self.hang = True
        elif kind == "contend":
            self._contend()
        else:  # clear: everything but the poison, which only a restart clears
            self.throttle = 1.0
            self.hang = False
            with self._lock:
                stop, self._contend_stop = self._contend_stop, None
            if stop is not None:
                stop.set()
            self.hog.release(self.device)
        return None

    def _poison(self, xid: int) -> None:
        self.xid = xid
        if self.device.startswith("cuda"):
            text = _trigger_device_assert(self.device)
            if text is not None:
                self.error_text = text
            logger.warning("fault hook: CUDA context poisoned (XID %d): %s", xid, text)
        else:
            logger.warning("fault hook: context poisoned (XID %d, CPU stand-in)", xid)
        self.poisoned = True

    def _contend(self) -> None:
        with self._lock:
            if self._contend_stop is not None:
                return
            stop = self._contend_stop = threading.Event()
        device = self.device

        def loop() -> None:
            import torch

            dev = torch.device(device)
            size = 2048 if device.startswith("cuda") else 256
            a = torch.randn(size, size, device=dev)
            while not stop.is_set():
                (a @ a).sum().item()

        threading.Thread(target=loop, name="fault-contend", daemon=True).start()


#: The hook of this process (engines read it on every step; inert until the admin route
#: changes it).
HOOK = FaultHook()


def token() -> str | None:
    """The hook's secret from the environment; None (no hook) when unset or empty."""
    value = os.environ.get(TOKEN_ENV, "")
    return value or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_problem(host: str, remote: bool) -> str | None:
    """Why a server on ``host`` must not start with the hook (None: it may)."""
    if token() is None or remote or is_loopback(host):
        return None
    return (
        f"refusing to serve the fault hook on non-loopback host {host} ({TOKEN_ENV} is set); "
        "pass --fault-hook-remote to allow it"
    )


def add_args(parser: argparse.ArgumentParser) -> None:
    """``--liveness`` and ``--fault-hook-remote``, for both servers."""
    parser.add_argument(
        "--liveness",
        choices=LIVENESS_CHOICES,
        default="shallow",
        help="shallow: /health/live answers while the process serves; deep: a tiny "
        f"computation on the device within {DEEP_LIVE_TIMEOUT_S:g} s (503 on a poisoned context)",
    )
    parser.add_argument(
        "--fault-hook-remote",
        action="store_true",
        help=f"allow the fault hook ({TOKEN_ENV}) on a non-loopback host",
    )


def check_bind_or_exit(host: str, remote: bool) -> None:
    """Exit 2 with one line when the hook would be reachable from the network unasked."""
    problem = bind_problem(host, remote)
    if problem is not None:
        print(f"error: {problem}", flush=True)
        raise SystemExit(2)


async def liveness(mode: str, loaded: bool) -> str | None:
    """None when the replica is live in ``mode``, else why not. Before the model is loaded
    deep liveness is shallow (the device may still be initialising)."""
    if mode != "deep" or not loaded:
        return None
    return await HOOK.deep_live()


def _parse(body: bytes) -> tuple[str, float | None, int | None, float] | str:
    """The kind, factor, xid and mib of a POST body, or what is wrong with it."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return "the body must be JSON"
    if not isinstance(doc, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(doc) - {"kind", "op", "factor", "xid", "mib"})
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"
    if "kind" in doc and "op" in doc:
        return "give kind or op, not both"
    kind = doc.get("kind", doc.get("op"))
    if kind not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}, got {kind!r}"
    factor, xid, mib = doc.get("factor"), doc.get("xid"), doc.get("mib")
    if kind == "hog":
        if isinstance(mib, bool) or not isinstance(mib, int | float):
            return "hog needs mib, a number of MiB"
        if not 0 < float(mib) <= MAX_HOG_MIB:
            return f"mib must be above 0 and at most {MAX_HOG_MIB}, got {mib}"
    elif mib is not None:
        return "mib is for hog only"
    if factor is not None:
        if kind != "throttle":
            return "factor is for throttle only"
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            return "factor must be a number"
        if not 1.0 <= float(factor) <= MAX_FACTOR:
            return f"factor must be from 1 to {MAX_FACTOR:g}, got {factor}"
    if xid is not None:
        if kind != "poison":
            return "xid is for poison only"
        if isinstance(xid, bool) or not isinstance(xid, int) or not 0 <= xid <= 9999:
            return f"xid must be an integer from 0 to 9999, got {xid!r}"
    return str(kind), None if factor is None else float(factor), xid, float(mib or 0)


class FaultHookMiddleware:
    """Serves ``/admin/fault`` and holds every other request while ``hang`` is set."""

    def __init__(self, app: ASGIApp, secret: str, hook: FaultHook = HOOK) -> None:
        self.app = app
        self._secret = secret.encode()
        self.hook = hook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == PATH:
            await self._admin(scope, receive, send)
            return
        while self.hook.hang:
            await asyncio.sleep(0.05)
        await self.app(scope, receive, send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = b""
        for name, value in scope.get("headers", []):
            if name.lower() == TOKEN_HEADER.encode():
                given = value
        if not hmac.compare_digest(given, self._secret):
            await _answer(send, 403, {"error": "wrong or missing fault token"})
            return
        method = scope.get("method")
        if method == "GET":
            await _answer(send, 200, self.hook.state())
            return
        if method != "POST":
            await _answer(send, 405, {"error": "GET or POST"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                await _answer(send, 413, {"error": "body too large"})
                return
            if not message.get("more_body"):
                break
        parsed = _parse(body)
        if isinstance(parsed, str):
            await _answer(send, 400, {"error": parsed})
            return
        kind, factor, xid, mib = parsed
        logger.warning("fault hook: %s (factor %s, xid %s, mib %s)", kind, factor, xid, mib)
        # poison synchronises the device and a hog writes its memory: off the event loop
        loop = asyncio.get_running_loop()
        error = await loop.run_in_executor(None, self.hook.apply, kind, factor, xid, mib)
        if error is not None:
            await _answer(send, HOG_FAILED_STATUS, {"error": error, **self.hook.state()})
            return
        await _answer(send, 200, self.hook.state())


async def _answer(send: Send, status: int, doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def mount(app: ASGIApp, device: str) -> ASGIApp:
    """``app`` with the hook when the environment gives a token, else ``app`` unchanged."""
    HOOK.device = device
    secret = token()
    if secret is None:
        return app
    logger.info("fault hook enabled at %s (token from %s)", PATH, TOKEN_ENV)
    return FaultHookMiddleware(app, secret)
