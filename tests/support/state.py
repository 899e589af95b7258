"""A fault state folder of a test module's own (``GPUCHAOS_STATE_DIR``), so its faults' state
files and reverters never meet another module's or a real run's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def own_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``GPUCHAOS_STATE_DIR`` at a fresh folder; yields the fault files' folder in it
    (``faults``) and puts the variable back as it was."""
    path = tmp_path_factory.mktemp("state")
    old = os.environ.get("GPUCHAOS_STATE_DIR")
    os.environ["GPUCHAOS_STATE_DIR"] = str(path)
    try:
        yield path / "faults"
    finally:
        if old is None:
            os.environ.pop("GPUCHAOS_STATE_DIR", None)
        else:
            os.environ["GPUCHAOS_STATE_DIR"] = old
