"""What every command of the CLI shares: logging set up once per role, a run's
``harness.log``, common options. The only module besides :mod:`harness.cli` that configures
logging; command modules (:data:`harness.cli.COMMAND_MODULES`) import from here, never from
:mod:`harness.cli` (which imports them).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now: while the live progress panel is shown, rich
    swaps in a proxy that prints log lines above the panel."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


#: The handlers this module put on the root logger, by role: configuring again (the CLI
#: called twice in one process, as tests do) replaces them instead of adding a copy, which
#: would print every line once more each time.
_handlers: dict[str, logging.Handler] = {}


def _install(role: str, handler: logging.Handler | None) -> None:
    """Put ``handler`` on the root logger as ``role``, removing (and closing) the last one."""
    root = logging.getLogger()
    old = _handlers.pop(role, None)
    if old is not None:
        root.removeHandler(old)
        old.close()
    if handler is not None:
        _handlers[role] = handler
        root.addHandler(handler)


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(_CurrentStderr())
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    # chaoslib logs every step at INFO; keep the terminal to the harness's own story
    console.addFilter(lambda r: verbose or not r.name.startswith(("chaoslib", "chaostoolkit")))
    _install("console", console)
    for noisy in ("urllib3", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _log_to_file(path: Path) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    )
    _install("run file", handler)


def allow_module_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-module",
        action="append",
        default=[],
        metavar="NAME",
        help="also let activities and controls come from Python module NAME (and its "
        "submodules); by default only harness.chaos and chaosk8s (repeatable)",
    )


def seed_option(text: str) -> int:
    """An argparse ``type`` for ``--seed N``: a whole number the plan models accept."""
    from harness.config.base import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected 0 to {MAX_SEED}, got {value}")
    return value
