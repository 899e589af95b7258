"""Small helpers the built-in faults share (not faults: the registry imports this module
like the others and finds nothing registered in it)."""

from __future__ import annotations

import psutil


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
