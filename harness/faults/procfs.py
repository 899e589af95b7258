"""Small readers of /proc: process state, address-space limit and size, process identity."""

from __future__ import annotations

import re
from pathlib import Path

import psutil

_LIMIT_LINE = re.compile(r"^Max address space\s+(\S+)\s+(\S+)", re.MULTILINE)
_VMSIZE = re.compile(r"^VmSize:\s+(\d+)\s+kB", re.MULTILINE)
#: start times of the same process read by two processes differ by float rounding only
_START_TOLERANCE_S = 0.05


def proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat ('R', 'S', 'T', 'Z', ...); None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return text[text.rindex(")") + 2 :].split(" ", 1)[0]


def address_space_limit(pid: int) -> tuple[int | None, int | None] | None:
    """(soft, hard) 'Max address space' from /proc/PID/limits in bytes (None: unlimited);
    None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return None
    m = _LIMIT_LINE.search(text)
    if m is None:
        return None
    soft, hard = (None if v == "unlimited" else int(v) for v in m.groups())
    return soft, hard


def vm_size(pid: int) -> int | None:
    """The process's address-space size (VmSize) in bytes; None when gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = _VMSIZE.search(text)
    return int(m.group(1)) * 1024 if m else None


def start_time(pid: int) -> float | None:
    """The process's start time (unix seconds), which tells it apart from a reused pid."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def same_process(pid: int, started: float | None) -> bool:
    """True when ``pid`` still names the process that started at ``started`` and is not a
    zombie."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return started is None or abs(created - started) < _START_TOLERANCE_S
