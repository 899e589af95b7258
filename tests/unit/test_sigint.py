"""A harness started with SIGINT ignored (a shell's background job: cron scripts, ``cmd &``
in CI) still stops on SIGINT: Ctrl-C, ``kill -INT`` and the abort guards rely on it."""

from __future__ import annotations

import signal
import subprocess
import sys

CHILD = """
import os, signal
from harness.procs import interrupt_on_sigint
assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # as a background job starts
interrupt_on_sigint()
try:
    os.kill(os.getpid(), signal.SIGINT)
    signal.sigtimedwait([], 0.5) if hasattr(signal, "sigtimedwait") else None
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_sigint_interrupts_even_when_the_process_started_with_it_ignored() -> None:
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    done = subprocess.run(
        [sys.executable, "-c", CHILD], preexec_fn=ignore_sigint, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout.strip() == "interrupted", done.stdout + done.stderr
