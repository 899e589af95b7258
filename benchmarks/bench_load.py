"""``make bench-load``: is the measuring instrument (the recording Locust user) the bottleneck?

Runs, in one invocation, the harness's recording users (``harness/load/locustfile.py``: user
``openai``, the whole completion at once, and ``openai-stream``, tokens and TTFT read from
the SSE stream as it arrives; one row of ``requests.csv`` per request, written as it ends)
and a plain Locust ``FastHttpUser`` (``benchmarks/locust_plain.py``) posting a body of the
same kind and reading the answer whole, against the same trivial endpoint: a minimal
asyncio HTTP/1.1 server (a subprocess of this script) that answers every
``POST /v1/completions`` with a fixed small OpenAI completion, or a fixed 16-token SSE
stream when the body asks for ``"stream": true``.

Each round runs the plain and the recording Locust *at the same time*, both pinned to one
CPU (the server on another), so both see the same machine: on a shared VM, runs one after
the other differed by up to 30% from noise alone. The server counts the requests of each
(the plain user marks its own with ``?client=plain``); the gated figure is the ratio of
requests per CPU-second of each Locust process, which does not depend on how the kernel
shared the CPU between them (the requests/s ratio is printed too). Goal: >= 0.9 for both
users. Every round of the recording user is checked: as many rows in ``requests.csv`` as
requests in Locust's own statistics, every one a clean 200. ``--profile DIR`` writes a
cProfile of each Locust process (``python -m cProfile`` around Locust).

Never imports locust (Locust runs only in its subprocesses); every child dies with this
script. ``BENCH_RECORDING_LOCUSTFILE`` names another locustfile for the recording side (to
compare two versions of it).

Usage: ``python benchmarks/bench_load.py [--quick] [--seconds S] [--users N] [--repeat R]
[--profile DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO_ROOT / "harness" / "load" / "locustfile.py"
PLAIN_LOCUSTFILE = Path(__file__).resolve().with_name("locust_plain.py")
GOAL = 0.9
SETTLE_S = 1.0  # after the first request, before the counter is read
START_TIMEOUT_S = 30.0
MAX_TOKENS = 16
PROMPT_WORDS = 8

# -- the trivial endpoint ---------------------------------------------------------------------

_TEXT = " the quick brown fox jumps over the lazy dog and the gpu"


def _json_response(doc: object) -> bytes:
    body = json.dumps(doc, separators=(",", ":")).encode()
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-replica-id: bench\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _completion() -> bytes:
    doc = {
        "id": "cmpl-bench",
        "object": "text_completion",
        "created": 0,
        "model": "bench",
        "choices": [{"text": _TEXT, "index": 0, "logprobs": None, "finish_reason": "length"}],
        "usage": {
            "prompt_tokens": PROMPT_WORDS,
            "completion_tokens": MAX_TOKENS,
            "total_tokens": PROMPT_WORDS + MAX_TOKENS,
        },
    }
    return _json_response(doc)


def _stream() -> bytes:
    events = []
    for i, word in enumerate(_TEXT.split()[:MAX_TOKENS]):
        finish = "length" if i == MAX_TOKENS - 1 else None
        choice = {"text": " " + word, "index": 0, "logprobs": None, "finish_reason": finish}
        chunk = {"id": "cmpl-bench", "object": "text_completion", "choices": [choice]}
        events.append(f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode())
    events.append(b"data: [DONE]\n\n")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-replica-id: bench\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    return head + chunks


#: The v2 model of the trivial endpoint: one small image-like FP32 input.
V2_MODEL = "classifier"
V2_INPUTS = [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 16, 16]}]


def _v2_metadata() -> bytes:
    outputs = [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}]
    doc = {"name": V2_MODEL, "platform": "bench", "inputs": V2_INPUTS, "outputs": outputs}
    return _json_response(doc)


def _v2_answer() -> bytes:
    output = {"name": "output", "datatype": "FP32", "shape": [1, 10], "data": [0.1] * 10}
    return _json_response({"model_name": V2_MODEL, "outputs": [output]})


class TrivialEndpoint(asyncio.Protocol):
    """HTTP/1.1 keep-alive: fixed answers, counted per client.

    ``POST /v1/completions`` (a stream when the body asks for one), ``GET /v2/models/...``
    (metadata, not counted) and ``POST /v2/models/.../infer``. A request whose target
    carries ``?client=plain`` counts for the plain user, any other for the recording one;
    ``GET /count`` answers ``<plain> <recording>``.
    """

    answered = {"plain": 0, "recording": 0}
    completion = _completion()
    stream = _stream()
    v2_metadata = _v2_metadata()
    v2_answer = _v2_answer()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            first_line = head[: head.find(b"\r\n")]
            if first_line.startswith(b"get /count"):
                counts = TrivialEndpoint.answered
                text = b"%d %d" % (counts["plain"], counts["recording"])
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(text), text)
                )
                continue
            if first_line.startswith(b"get /v2/models/"):
                self.transport.write(self.v2_metadata)
                continue
            client = "plain" if b"client=plain" in first_line else "recording"
            TrivialEndpoint.answered[client] += 1
            if b"/v2/models/" in first_line:
                self.transport.write(self.v2_answer)
                continue
            streaming = b'"stream": true' in body or b'"stream":true' in body
            self.transport.write(self.stream if streaming else self.completion)


def serve(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(TrivialEndpoint, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# -- orchestration ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answered(port: int) -> dict[str, int]:
    """Requests answered so far, per client (``plain``, ``recording``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(b"GET /count HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while True:
            head, _, body = data.partition(b"\r\n\r\n")
            if _ and len(body) >= int(head.lower().split(b"content-length:")[1].split()[0]):
                break
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("the trivial endpoint closed the connection")
            data += chunk
    plain, recording = body.split()
    return {"plain": int(plain), "recording": int(recording)}


def _child(cpu: int | None) -> Callable[[], None]:
    """A ``preexec_fn``: the child dies with this script and runs on ``cpu`` (if given)."""
    from harness.procs import die_with_parent

    return die_with_parent(os.getpid(), None if cpu is None else {cpu})


def _cpus() -> tuple[int | None, int | None]:
    """(server CPU, Locust CPU): two distinct CPUs of this process's set, or no pinning."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Client:
    """One Locust process of a round and, once measured, what it did."""

    user: str  # "plain" or "recording"
    proc: subprocess.Popen[bytes]
    folder: Path
    log: Any
    rps: float = 0.0  # requests answered per second of wall time
    per_cpu_s: float = 0.0  # requests answered per CPU-second of this Locust process
    requests: int = 0  # Locust's own count
    records: int | None = None  # rows of requests.csv (recording only)
    not_ok: int = 0  # records that are not a 200 without error


def _locust_count(csv_prefix: Path) -> int:
    with open(f"{csv_prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"])
    raise RuntimeError(f"no Aggregated row in {csv_prefix}_stats.csv")


#: The recording users compared, each against a plain user sending the same kind of request.
KINDS = ("openai", "openai-stream", "kserve-v2")


def _plain_request(kind: str) -> tuple[str, str]:
    """(path, body) of the plain user's request for ``kind``."""
    if kind == "kserve-v2":
        from harness.load.sampling import v2_payload

        payload = v2_payload(V2_INPUTS, random.Random("bench"))
        return f"/v2/models/{V2_MODEL}/infer?client=plain", json.dumps(payload)
    body: dict[str, object] = {"model": "gpuchaos", "prompt": "token " * PROMPT_WORDS}
    body |= {"max_tokens": MAX_TOKENS, "stream": kind == "openai-stream"}
    return "/v1/completions?client=plain", json.dumps(body)


def start(
    user: str,
    port: int,
    kind: str,
    users: int,
    work: Path,
    cpu: int | None,
    profile: Path | None,
) -> Client:
    """Start one Locust process (its load runs far longer than it is measured)."""
    from harness.config import LoadSpec, StepShape
    from harness.load.loadconfig import CONFIG_ENV, write_load_config

    folder = Path(tempfile.mkdtemp(prefix=f"{user}-", dir=work))
    total = 3600.0  # the run is stopped (SIGINT) long before this
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if user == "recording":
        shape = StepShape(kind="step", duration_s=total, start=users, increment=0, step_s=total)
        spec = LoadSpec.model_validate(
            {
                "user": kind,
                "shape": shape,
                "max_tokens": MAX_TOKENS,
                "prompt_words": PROMPT_WORDS,
                "model": V2_MODEL if kind == "kserve-v2" else None,
            }
        )
        config = folder / "load.json"
        write_load_config(config, spec, folder / "requests.csv", time.time() + 1.0)
        env[CONFIG_ENV] = str(config)
        locustfile = Path(os.environ.get("BENCH_RECORDING_LOCUSTFILE") or LOCUSTFILE)
    else:
        path, body = _plain_request(kind)
        env |= {"BENCH_BODY": body, "BENCH_USERS": str(users)}
        env |= {"BENCH_DURATION_S": str(total), "BENCH_PATH": path}
        locustfile = PLAIN_LOCUSTFILE
    cmd = [sys.executable]
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        out = profile / f"{user}-{kind}-{time.time():.0f}.prof"
        cmd += ["-m", "cProfile", "-o", str(out)]
    cmd += ["-m", "locust", "-f", str(locustfile), "--headless", "--host"]
    cmd += [f"http://127.0.0.1:{port}", "--csv", str(folder / "locust"), "--only-summary"]
    cmd += ["--exit-code-on-error", "0", "--stop-timeout", "2", "--loglevel", "WARNING"]
    log = (folder / "locust.log").open("wb")
    proc = subprocess.Popen(
        cmd,
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_child(cpu),
    )
    return Client(user, proc, folder, log)


def stop(clients: list[Client]) -> None:
    """SIGINT to all (Locust writes its summary); SIGKILL whichever has not exited in 30 s."""
    for c in clients:
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGINT)
    for c in clients:
        try:
            c.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait(timeout=10)
        c.log.close()


def check(client: Client) -> None:
    """Read Locust's request count and, for the recording user, its records."""
    client.requests = _locust_count(client.folder / "locust")
    if client.user == "recording":
        with open(client.folder / "requests.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        client.records = len(rows)
        client.not_ok = sum(1 for r in rows if r["status"] != "200" or r["error"])


def measure_round(
    port: int,
    kind: str,
    users: int,
    seconds: float,
    work: Path,
    cpu: int | None,
    profile: Path | None,
) -> tuple[Client, Client]:
    """Both users at once on the same CPU, counted by the server over ``seconds``."""
    clients = [
        start(user, port, kind, users, work, cpu, profile) for user in ("plain", "recording")
    ]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        first = answered(port)
        while True:
            now = answered(port)
            if all(now[c.user] > first[c.user] for c in clients):
                break
            for c in clients:
                if c.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{c.user} Locust sent nothing; {c.folder / 'locust.log'}")
            time.sleep(0.05)
        time.sleep(SETTLE_S)
        c1, t1 = answered(port), time.perf_counter()
        cpu1 = [cpu_seconds(c.proc.pid) for c in clients]
        time.sleep(seconds)
        c2, t2 = answered(port), time.perf_counter()
        cpu2 = [cpu_seconds(c.proc.pid) for c in clients]
        for c, before, after in zip(clients, cpu1, cpu2, strict=True):
            count = c2[c.user] - c1[c.user]
            c.rps = count / (t2 - t1)
            c.per_cpu_s = count / max(after - before, 1e-9)
    finally:
        stop(clients)
    for c in clients:
        check(c)
    return clients[0], clients[1]


def compare(
    port: int,
    kind: str,
    users: int,
    seconds: float,
    repeat: int,
    work: Path,
    cpu: int | None,
    profile: Path | None,
) -> tuple[float, list[str]]:
    """Rounds of both users side by side; the overall ratio and the problems found."""
    label = kind
    print(f"\n{label}: {users} users each, {seconds:g} s per round, {repeat} round(s)")
    print(
        f"  {'round':>5}  {'req/s: plain':>12}  {'recording':>9}  {'ratio':>5}  "
        f"{'req/CPU-s: plain':>16}  {'recording':>9}  {'ratio':>5}  records"
    )
    problems: list[str] = []
    plain_cpu = recording_cpu = plain_sum = recording_sum = 0.0
    for i in range(1, repeat + 1):
        plain, recording = measure_round(port, kind, users, seconds, work, cpu, profile)
        plain_sum += plain.rps
        recording_sum += recording.rps
        plain_cpu += 1 / plain.per_cpu_s
        recording_cpu += 1 / recording.per_cpu_s
        check = f"{recording.records} rows / {recording.requests} requests"
        if recording.records != recording.requests:
            problems.append(f"{label} round {i}: {check}")
        if recording.not_ok:
            problems.append(f"{label} round {i}: {recording.not_ok} records not a clean 200")
        ratio = recording.rps / plain.rps
        cpu_ratio = recording.per_cpu_s / plain.per_cpu_s
        print(
            f"  {i:>5}  {plain.rps:>12.0f}  {recording.rps:>9.0f}  {ratio:>5.2f}  "
            f"{plain.per_cpu_s:>16.0f}  {recording.per_cpu_s:>9.0f}  {cpu_ratio:>5.2f}  {check}"
        )
    wall = recording_sum / plain_sum
    # mean CPU time per request of each user, over the rounds
    per_cpu = plain_cpu / recording_cpu
    print(f"  requests/s, recording / plain (sums over the rounds): {wall:.3f}")
    print(
        f"  requests per CPU-second of Locust, recording / plain: {per_cpu:.3f} "
        f"(the gated figure: independent of how the CPU was shared)"
    )
    return per_cpu, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="recording Locust user vs a plain one")
    parser.add_argument("--quick", action="store_true", help="one short round of each user")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per round")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile both Locusts")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    seconds = args.seconds or (4.0 if args.quick else 8.0)
    repeat = args.repeat or (1 if args.quick else 3)
    server_cpu, locust_cpu = _cpus()
    port = free_port()
    print(
        f"bench-load: {os.cpu_count()} CPUs; trivial endpoint on "
        f"{'any CPU' if server_cpu is None else f'CPU {server_cpu}'}, both Locusts on "
        f"{'any CPU' if locust_cpu is None else f'CPU {locust_cpu}'}; goal ratio >= {GOAL}"
    )
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)],
        preexec_fn=_child(server_cpu),
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                answered(port)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the trivial endpoint did not start") from None
                time.sleep(0.05)
        with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
            work = Path(tmp)
            results = [
                compare(port, kind, args.users, seconds, repeat, work, locust_cpu, args.profile)
                for kind in KINDS
            ]
    finally:
        server.terminate()
        server.wait(timeout=10)
    print()
    met = True
    for (ratio, _problems), label in zip(results, KINDS, strict=True):
        met = met and ratio >= GOAL
        verdict = "met" if ratio >= GOAL else "NOT met"
        print(f"goal: {label} / plain requests per CPU-second >= {GOAL}: {ratio:.3f}, {verdict}")
    problems = [p for _ratio, found in results for p in found]
    for problem in problems:
        print(f"problem: {problem}")
    return 0 if met and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
