"""`python -m workloads.classifier`: run the reference classifier (KServe v2)."""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402

from workloads import cli, faulthook  # noqa: E402
from workloads.classifier.config import (  # noqa: E402
    CLASSIFIER_CONFIGS,
    ClassifierSettings,
    resolve_classifier_name,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.server_parser(
        "python -m workloads.classifier",
        "gpuchaos reference image classifier (KServe v2 / Open Inference Protocol).",
        list(CLASSIFIER_CONFIGS),
        "auto: tiny on cpu, resnet50 on cuda",
    )
    parser.add_argument("--max-batch-size", type=cli.positive, default=16, help="images per batch")
    parser.add_argument(
        "--max-batch-delay-ms",
        type=cli.non_negative_float,
        default=5.0,
        help="longest wait after a request's arrival to fill its batch",
    )
    cli.add_admission_args(parser)
    cli.add_process_args(parser)
    faulthook.add_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    faulthook.check_bind_or_exit(args.host, args.fault_hook_remote)
    cli.configure_logging(args.log_level)
    settings = ClassifierSettings(
        host=args.host,
        port=args.port,
        device=args.device,
        model=resolve_classifier_name(args.model, args.device),
        replica_id=cli.replica_id(args.replica_id),
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        max_queue_size=args.max_queue_size,
        request_timeout_s=args.request_timeout_s,
        shutdown_grace_s=args.shutdown_grace_s,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        seed=args.seed,
        threads=args.threads,
        liveness=args.liveness,
        memory_fraction=args.memory_fraction,
    )
    from workloads.classifier.server import serve

    return cli.run(serve, settings, _STARTED)


if __name__ == "__main__":
    raise SystemExit(main())
