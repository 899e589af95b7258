"""The command line both reference servers share (standard library only, so `python -m` parses
its flags before anything heavy is imported): flag checks, the common flags, logging and the
run of the server."""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
from collections.abc import Callable
from typing import TypeVar

DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")

SettingsT = TypeVar("SettingsT")


def device(value: str) -> str:
    if not DEVICE_PATTERN.match(value):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {value!r}")
    return value


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return number


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return number


def non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return number


def fraction(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return number


def server_parser(
    prog: str, description: str, models: list[str], model_help: str
) -> argparse.ArgumentParser:
    """A parser with the flags that come first: where to listen, the device, the model and the
    replica id."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--model", choices=["auto", *models], default="auto", help=model_help)
    parser.add_argument("--replica-id", default=None, help="default: hostname-pid")
    return parser


def add_admission_args(parser: argparse.ArgumentParser) -> None:
    """Queue limit, request timeout, the drain's grace period and the read time-outs (against
    slow-loris clients)."""
    parser.add_argument(
        "--max-queue-size", type=non_negative, default=256, help="waiting requests; beyond: 429"
    )
    parser.add_argument(
        "--request-timeout-s", type=positive_float, default=60.0, help="queue included; 504"
    )
    parser.add_argument(
        "--shutdown-grace-s",
        type=non_negative_float,
        default=10.0,
        help="on SIGTERM, how long in-flight requests may finish",
    )
    parser.add_argument(
        "--header-timeout-s",
        type=positive_float,
        default=10.0,
        help="a request's headers must arrive within this, from their first byte; else 408",
    )
    parser.add_argument(
        "--body-timeout-s",
        type=positive_float,
        default=30.0,
        help="a request's body must arrive within this, from the end of its headers; else 408",
    )


def add_process_args(parser: argparse.ArgumentParser) -> None:
    """The flags that come last: seed, threads, memory fraction and log level."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive, default=1, help="torch.set_num_threads")
    parser.add_argument(
        "--memory-fraction",
        type=fraction,
        default=None,
        help="CUDA: cap this process's allocations at this share of the device's memory "
        "(torch's per-process memory fraction; the MPS/MIG stand-in); no effect on CPU",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def replica_id(given: str | None) -> str:
    """The replica id given, or hostname-pid."""
    return given or f"{socket.gethostname()}-{os.getpid()}"


def run(
    serve: Callable[[SettingsT, float | None], int], settings: SettingsT, started: float
) -> int:
    """Serve; 130 after Ctrl-C (uvicorn shuts down gracefully on SIGINT, then re-raises it;
    no traceback for that)."""
    try:
        return serve(settings, started)
    except KeyboardInterrupt:
        return 130
