"""`python -m workloads.llm`: run the reference LLM server."""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402
import logging  # noqa: E402

from workloads import cli, faulthook  # noqa: E402
from workloads.llm.config import (  # noqa: E402
    MODEL_CONFIGS,
    ServerSettings,
    resolve_model_name,
)

logger = logging.getLogger("workloads.llm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.server_parser(
        "python -m workloads.llm",
        "gpuchaos reference LLM inference server (OpenAI-style completions).",
        list(MODEL_CONFIGS),
        "auto: tiny on cpu, gpt2-small on cuda",
    )
    parser.add_argument("--max-batch-size", type=cli.positive, default=16)
    parser.add_argument("--max-tokens-limit", type=cli.positive, default=1024)
    cli.add_admission_args(parser)
    parser.add_argument(
        "--kv-cache",
        choices=["preallocate", "on-demand"],
        default="preallocate",
        help="preallocate the KV-cache pool at startup, or grow and shrink it with the batch",
    )
    parser.add_argument(
        "--gpu-memory-utilization",
        type=cli.fraction,
        default=None,
        help="CUDA, preallocate: size the pool to this share of GPU memory (like vLLM)",
    )
    parser.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        help="CUDA: run decode steps eagerly instead of as CUDA graphs",
    )
    cli.add_process_args(parser)
    faulthook.add_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    faulthook.check_bind_or_exit(args.host, args.fault_hook_remote)
    cli.configure_logging(args.log_level)
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        device=args.device,
        model=resolve_model_name(args.model, args.device),
        replica_id=cli.replica_id(args.replica_id),
        max_batch_size=args.max_batch_size,
        max_tokens_limit=args.max_tokens_limit,
        seed=args.seed,
        threads=args.threads,
        liveness=args.liveness,
        memory_fraction=args.memory_fraction,
        max_queue_size=args.max_queue_size,
        request_timeout_s=args.request_timeout_s,
        shutdown_grace_s=args.shutdown_grace_s,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        kv_cache=args.kv_cache,
        gpu_memory_utilization=args.gpu_memory_utilization,
        cuda_graphs=args.cuda_graphs,
    )
    from workloads.llm.server import serve

    return cli.run(serve, settings, _STARTED)


if __name__ == "__main__":
    raise SystemExit(main())
