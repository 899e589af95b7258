"""``make bench-workload``: what the reference servers serve, over batch sizes and concurrency.

Starts the real servers (``python -m workloads.llm``, ``python -m workloads.classifier``) as
subprocesses on 127.0.0.1, one per server batch size (``--max-batch-size``), and drives each
with a closed loop of N concurrent keep-alive connections for a few seconds per point, from a
minimal asyncio HTTP/1.1 client in this process (cheap, so the client is not what is
measured). Prints one table:

- LLM (streaming ``/v1/completions``): requests/s, output tokens/s, latency p50/p99 and time to
  first token p50. On CPU the tiny model over batch {1, 8, 16} x concurrency {1, 8, 32}, and
  gpt2-small at one small point; on CUDA gpt2-small.
- Classifier (KServe v2, binary tensors, one image per request, dynamic batching): images/s
  and latency at a couple of server batch sizes.

On CUDA it also times the engine's decode step in this process, eager against CUDA graphs, at
batch 1 to 64 (gpt2-small, bf16, the engine's own code paths: host lists in, argmax back), and
prints the graph/eager ratio of decode tokens/s with the goal (>= 5x at batch 64). On CPU it
says that part needs CUDA.

Usage: ``python benchmarks/bench_workload.py [--quick] [--device auto|cpu|cuda]
[--duration S] [--batches 1,8,16] [--concurrency 1,8,32] [--no-gpt2] [--no-classifier]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 180.0
PROMPT = "the quick brown fox jumps over the lazy dog"
MAX_TOKENS = 16
#: Goal of the issue: graph decode tokens/s at batch 64 at least this many times eager's.
GRAPH_GOAL = 5.0
GRAPH_GOAL_BATCH = 64
DECODE_BATCHES = (1, 2, 4, 8, 16, 32, 64)


# -- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path


def _get_status(port: int, path: str) -> int:
    """Status of a GET on 127.0.0.1 (0 when nothing answers); stdlib only."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            line = sock.makefile("rb").readline()
        return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
    except (OSError, ValueError, IndexError):
        return 0


@contextlib.contextmanager
def run_server(module: str, args: Sequence[str], log_dir: Path) -> Iterator[Server]:
    """Start ``python -m module`` on a free port, wait for Ready, yield it, always stop it."""
    port = free_port()
    log_path = log_dir / f"{module.rsplit('.', 1)[-1]}-{port}.log"
    cmd = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port), *args]
    cmd += ["--log-level", "warning"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while _get_status(port, "/health/ready") != 200:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{' '.join(cmd)} exited with {proc.returncode}:\n{log_path.read_text()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{module} not Ready after {READY_TIMEOUT_S:g} s")
            time.sleep(0.1)
        yield Server(proc, port, log_path)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# -- a minimal HTTP/1.1 client ----------------------------------------------------------------


@dataclass
class Result:
    start: float
    end: float
    ok: bool
    ttft: float | None = None
    units: int = 0  # output tokens (LLM) or images (classifier)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split()[1])
    headers: dict[bytes, bytes] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return status, headers
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()


async def _read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes:
    if b"content-length" in headers:
        return await reader.readexactly(int(headers[b"content-length"]))
    parts: list[bytes] = []
    while True:  # chunked
        size = int((await reader.readline()).split(b";")[0], 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            return b"".join(parts)
        parts.append(data[:-2])


async def llm_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> Result:
    """One streaming completion; TTFT at the first token chunk, tokens counted as they come."""
    start = time.perf_counter()
    writer.write(request)
    status, headers = await _read_head(reader)
    if status != 200:
        await _read_body(reader, headers)
        return Result(start, time.perf_counter(), ok=False)
    ttft = None
    tokens = 0
    done = False
    while True:  # chunked SSE: one chunk per event
        size = int((await reader.readline()).split(b";")[0], 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            break
        if data.startswith(b"data: [DONE]"):
            done = True
        elif b'"choices":[{' in data:
            tokens += 1
            if ttft is None:
                ttft = time.perf_counter() - start
    return Result(start, time.perf_counter(), ok=done and tokens > 0, ttft=ttft, units=tokens)


async def classifier_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, images: int
) -> Result:
    start = time.perf_counter()
    writer.write(request)
    status, headers = await _read_head(reader)
    body = await _read_body(reader, headers)
    ok = status == 200 and b'"outputs"' in body
    return Result(start, time.perf_counter(), ok=ok, units=images if ok else 0)


def llm_request_bytes(port: int, max_tokens: int) -> bytes:
    body = json.dumps(
        {"model": "bench", "prompt": PROMPT, "max_tokens": max_tokens, "stream": True}
    ).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def classifier_request_bytes(port: int, image_shape: Sequence[int], images: int) -> bytes:
    pixels = images * 4
    for d in image_shape:
        pixels *= d
    shape = [images, *image_shape]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": shape,
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": pixels},
                }
            ]
        }
    ).encode()
    # bytes of float32 0.5 (0x3f000000, little endian)
    payload = header + b"\x00\x00\x00\x3f" * (pixels // 4)
    head = (
        f"POST /v2/models/classifier/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: "
        f"{len(header)}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


# -- one point ------------------------------------------------------------------------------


@dataclass
class Point:
    workload: str
    model: str
    device: str
    batch: int
    concurrency: int
    seconds: float
    results: list[Result] = field(default_factory=list)
    failed: int = 0

    def _pct(self, values: list[float], q: float) -> float | None:
        if not values:
            return None
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))]

    def row(self) -> list[str]:
        ok = [r for r in self.results if r.ok]
        latencies = [(r.end - r.start) * 1000 for r in ok]
        ttfts = [r.ttft * 1000 for r in ok if r.ttft is not None]
        p50, p99 = self._pct(latencies, 0.5), self._pct(latencies, 0.99)
        ttft = statistics.median(ttfts) if ttfts else None
        units = sum(r.units for r in ok)

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        unit = "img/s" if self.workload == "classifier" else "tok/s"
        return [
            self.workload,
            self.model,
            self.device,
            str(self.batch),
            str(self.concurrency),
            f"{len(ok) / self.seconds:.1f}",
            f"{units / self.seconds:.0f} {unit}",
            ms(p50),
            ms(p99),
            ms(ttft),
            str(self.failed),
        ]


async def drive(
    port: int,
    request: bytes,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    images: int | None,
) -> tuple[list[Result], int]:
    """Closed loop: `concurrency` keep-alive connections, each sending `request` again as soon
    as the answer is complete. Returns the results that ended in the measured window (after
    the warm-up) and the count of failures there."""
    begin = time.perf_counter() + warmup_s
    end = begin + duration_s
    measured: list[Result] = []
    failed = 0

    async def worker() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < end:
                if images is None:
                    result = await llm_request(reader, writer, request)
                else:
                    result = await classifier_request(reader, writer, request, images)
                if begin <= result.start and result.end <= end:
                    measured.append(result)
                    failed += not result.ok
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return measured, failed


def measure(
    point: Point, port: int, request: bytes, warmup_s: float, images: int | None = None
) -> Point:
    point.results, point.failed = asyncio.run(
        drive(port, request, point.concurrency, warmup_s, point.seconds, images)
    )
    return point


# -- the decode-step comparison (CUDA) --------------------------------------------------------


def decode_step_ratio(device: str, steps: int) -> list[tuple[int, float, float]]:
    """(batch, eager ms per step, graph ms per step) for gpt2-small at DECODE_BATCHES."""
    import torch

    from workloads.llm.config import MODEL_CONFIGS
    from workloads.llm.graphs import GraphDecoder
    from workloads.llm.model import KVCache, build_model

    config = MODEL_CONFIGS["gpt2-small"]
    dev = torch.device(device)
    model = build_model(config, 0, dev, torch.bfloat16)
    limit = max(DECODE_BATCHES)
    cache = KVCache(config, limit, dev, torch.bfloat16)
    graphs = GraphDecoder(model, limit)
    position = 100  # every row decodes at position 100: span bucket 128
    rows = []
    with torch.inference_mode():
        for batch in DECODE_BATCHES:
            ids = [1] * batch
            positions = [position] * batch

            def eager(ids: list[int] = ids, positions: list[int] = positions) -> list[int]:
                logits = model.decode(
                    torch.tensor(ids, device=dev),
                    torch.tensor(positions, device=dev),
                    cache,
                    span=max(positions) + 1,
                )
                return list(logits.argmax(dim=-1).tolist())

            def graph(ids: list[int] = ids, positions: list[int] = positions) -> list[int]:
                return list(graphs.decode(ids, positions, cache).argmax(dim=-1).tolist())

            timings = []
            for step in (eager, graph):
                for _ in range(5):  # warm-up (and the graph's capture)
                    step()
                torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                torch.cuda.synchronize(dev)
                timings.append((time.perf_counter() - t0) / steps * 1000)
            rows.append((batch, timings[0], timings[1]))
    return rows


# -- main -------------------------------------------------------------------------------------


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for line in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))


def parse_ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="a smoke run (about 30 s)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--duration", type=float, default=None, help="seconds per point")
    parser.add_argument("--batches", type=parse_ints, default=None, help="e.g. 1,8,16")
    parser.add_argument("--concurrency", type=parse_ints, default=None, help="e.g. 1,8,32")
    parser.add_argument("--no-gpt2", action="store_true", help="CPU: skip the gpt2-small point")
    parser.add_argument("--no-classifier", action="store_true")
    parser.add_argument("--decode-steps", type=int, default=200, help="CUDA: steps timed")
    args = parser.parse_args(argv)

    import torch  # after parsing, so --help is quick

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "bench-workload: error: --device cuda: torch sees no CUDA device here", file=sys.stderr
        )
        return 2
    cuda = torch.cuda.is_available() if args.device == "auto" else args.device == "cuda"
    device = "cuda" if cuda else "cpu"
    gpu = torch.cuda.get_device_name(0) if cuda else None
    if args.quick:
        batches, levels, seconds, warmup = [1, 8], [1, 8], 1.5, 0.3
    else:
        batches, levels, seconds, warmup = [1, 8, 16], [1, 8, 32], 4.0, 0.5
        if cuda:
            batches, levels = [1, 16, 64], [1, 16, 64]
    batches = args.batches or batches
    levels = args.concurrency or levels
    seconds = args.duration or seconds
    print(
        f"bench-workload: device {device}{f' ({gpu})' if gpu else ''}, {os.cpu_count()} CPUs, "
        f"{seconds:g} s per point after {warmup:g} s of warm-up, streaming completions of "
        f"{MAX_TOKENS} tokens; client: asyncio in this process",
        flush=True,
    )
    started = time.perf_counter()
    points: list[Point] = []
    llm_model = "gpt2-small" if cuda else "tiny"
    with tempfile.TemporaryDirectory(prefix="bench-workload-") as tmp:
        logs = Path(tmp)
        for batch in batches:
            server_args = ["--device", device, "--model", llm_model, "--max-batch-size", str(batch)]
            with run_server("workloads.llm", server_args, logs) as server:
                request = llm_request_bytes(server.port, MAX_TOKENS)
                for level in levels:
                    point = Point("llm", llm_model, device, batch, level, seconds)
                    points.append(measure(point, server.port, request, warmup))
                    print("  " + "  ".join(points[-1].row()), flush=True)
        if not cuda and not args.no_gpt2 and not args.quick:
            server_args = ["--device", "cpu", "--model", "gpt2-small", "--max-batch-size", "1"]
            with run_server("workloads.llm", server_args, logs) as server:
                request = llm_request_bytes(server.port, 8)
                point = Point("llm (8 tok)", "gpt2-small", device, 1, 1, seconds)
                points.append(measure(point, server.port, request, warmup))
                print("  " + "  ".join(points[-1].row()), flush=True)
        if not args.no_classifier:
            cls_model = "resnet50" if cuda else "tiny"
            image_shape = [3, 224, 224] if cuda else [3, 32, 32]
            cls_level = 16 if not args.quick else 8
            for batch in [1, 16] if not cuda else [1, 32]:
                server_args = ["--device", device, "--model", cls_model]
                server_args += ["--max-batch-size", str(batch), "--max-batch-delay-ms", "2"]
                with run_server("workloads.classifier", server_args, logs) as server:
                    request = classifier_request_bytes(server.port, image_shape, 1)
                    point = Point("classifier", cls_model, device, batch, cls_level, seconds)
                    points.append(measure(point, server.port, request, warmup, images=1))
                    print("  " + "  ".join(points[-1].row()), flush=True)
    print()
    header = ["workload", "model", "device", "batch", "conc", "req/s", "throughput"]
    header += ["p50 ms", "p99 ms", "TTFT p50", "failed"]
    print_table(header, [p.row() for p in points])
    print(f"\nserver runs took {time.perf_counter() - started:.0f} s")

    print()
    if not cuda:
        print(
            "decode step, CUDA graphs vs eager: needs CUDA (none here); on a GPU machine this "
            f"prints the ratio at batch 1-64 and checks >= {GRAPH_GOAL:g}x at batch "
            f"{GRAPH_GOAL_BATCH}"
        )
        return 0
    rows = decode_step_ratio(device, args.decode_steps)
    table = [
        [
            str(b),
            f"{e:.3f}",
            f"{g:.3f}",
            f"{b / e * 1000:.0f}",
            f"{b / g * 1000:.0f}",
            f"{e / g:.2f}x",
        ]
        for b, e, g in rows
    ]
    print(f"decode step, gpt2-small bf16 on {gpu}, {args.decode_steps} steps each:")
    print_table(["batch", "eager ms", "graph ms", "eager tok/s", "graph tok/s", "ratio"], table)
    at_goal = next(e / g for b, e, g in rows if b == GRAPH_GOAL_BATCH)
    met = at_goal >= GRAPH_GOAL
    print(
        f"goal: graph decode tokens/s at batch {GRAPH_GOAL_BATCH} >= {GRAPH_GOAL:g}x eager: "
        f"{at_goal:.2f}x, {'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
