"""`python -m workloads.classifier`: run the reference classifier (KServe v2)."""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

from workloads.classifier.config import (  # noqa: E402
    CLASSIFIER_CONFIGS,
    ClassifierSettings,
    resolve_classifier_name,
)
from workloads.llm.__main__ import (  # noqa: E402
    _device,
    _non_negative,
    _non_negative_float,
    _positive,
    _positive_float,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.classifier",
        description="gpuchaos reference image classifier (KServe v2 / Open Inference Protocol).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--model",
        choices=["auto", *CLASSIFIER_CONFIGS],
        default="auto",
        help="auto: tiny on cpu, resnet50 on cuda",
    )
    parser.add_argument("--replica-id", default=None, help="default: hostname-pid")
    parser.add_argument("--max-batch-size", type=_positive, default=16, help="images per batch")
    parser.add_argument(
        "--max-batch-delay-ms",
        type=_non_negative_float,
        default=5.0,
        help="longest wait after a request's arrival to fill its batch",
    )
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
    settings = ClassifierSettings(
        host=args.host,
        port=args.port,
        device=args.device,
        model=resolve_classifier_name(args.model, args.device),
        replica_id=args.replica_id or f"{socket.gethostname()}-{os.getpid()}",
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        max_queue_size=args.max_queue_size,
        request_timeout_s=args.request_timeout_s,
        shutdown_grace_s=args.shutdown_grace_s,
        seed=args.seed,
        threads=args.threads,
    )
    from workloads.classifier.server import serve

    try:
        return serve(settings, started=_STARTED)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
