"""Fixtures for every tier, built on tests/support (one copy of the port and process helpers).

`processes`: starts a test's children (each in a process group of its own) and stops every
one, with its group, once the test has ended. `silent_port`: a port of 127.0.0.1 that accepts
connections and never answers. Tier fixtures live in tests/integration/conftest.py (the
reference server, the shared short node-loss run) and tests/gpu/conftest.py (the gpu marker).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import ports
from tests.support.procs import Processes


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Start children with ``processes.start(cmd, ...)``; all are stopped after the test."""
    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) and never answers."""
    with ports.silent_port() as port:
        yield port
