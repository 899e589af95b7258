"""`python -m workloads.llm`: run the reference LLM server."""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

from workloads.llm.config import (  # noqa: E402
    DEVICE_PATTERN,
    MODEL_CONFIGS,
    ServerSettings,
    resolve_model_name,
)

logger = logging.getLogger("workloads.llm")


def _device(value: str) -> str:
    if not DEVICE_PATTERN.match(value):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {value!r}")
    return value


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return number


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return number


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.llm",
        description="gpuchaos reference LLM inference server (OpenAI-style completions).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--model",
        choices=["auto", *MODEL_CONFIGS],
        default="auto",
        help="auto: tiny on cpu, gpt2-small on cuda",
    )
    parser.add_argument("--replica-id", default=None, help="default: hostname-pid")
    parser.add_argument("--max-batch-size", type=_positive, default=16)
    parser.add_argument("--max-tokens-limit", type=_positive, default=1024)
    parser.add_argument(
        "--max-queue-size", type=_non_negative, default=256, help="waiting requests; beyond: 429"
    )
    parser.add_argument(
        "--request-timeout-s", type=_positive_float, default=60.0, help="queue included; 504"
    )
    parser.add_argument(
        "--shutdown-grace-s",
        type=_non_negative_float,
        default=10.0,
        help="on SIGTERM, how long in-flight requests may finish",
    )
    parser.add_argument(
        "--kv-cache",
        choices=["preallocate", "on-demand"],
        default="preallocate",
        help="preallocate the KV-cache pool at startup, or grow and shrink it with the batch",
    )
    parser.add_argument(
        "--gpu-memory-utilization",
        type=_fraction,
        default=None,
        help="CUDA, preallocate: size the pool to this share of GPU memory (like vLLM)",
    )
    parser.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        help="CUDA: run decode steps eagerly instead of as CUDA graphs",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=_positive, default=1, help="torch.set_num_threads")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        device=args.device,
        model=resolve_model_name(args.model, args.device),
        replica_id=args.replica_id or f"{socket.gethostname()}-{os.getpid()}",
        max_batch_size=args.max_batch_size,
        max_tokens_limit=args.max_tokens_limit,
        seed=args.seed,
        threads=args.threads,
        max_queue_size=args.max_queue_size,
        request_timeout_s=args.request_timeout_s,
        shutdown_grace_s=args.shutdown_grace_s,
        kv_cache=args.kv_cache,
        gpu_memory_utilization=args.gpu_memory_utilization,
        cuda_graphs=args.cuda_graphs,
    )
    from workloads.llm.server import serve

    try:
        return serve(settings, started=_STARTED)
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on SIGINT, then re-raises it; no traceback for that.
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
