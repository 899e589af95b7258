"""The CLI configures logging once however often it is called in one process (tests call
it many times): every line is printed once, and a run's harness.log stops with the run."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from harness import cli


def test_configuring_again_replaces_the_console_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    try:
        for _ in range(3):
            cli._configure_logging(verbose=False)
        logging.getLogger("harness.test").info("said once")
    finally:
        cli._install("console", None)
    assert err.getvalue().count("said once") == 1


def test_the_run_file_handler_is_replaced_and_removed(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    cli._log_to_file(first)
    cli._log_to_file(second)
    logging.getLogger("harness.test").warning("to the second run only")
    cli._install("run file", None)
    logging.getLogger("harness.test").warning("after the run")
    assert "to the second run only" not in first.read_text()
    text = second.read_text()
    assert "to the second run only" in text and "after the run" not in text
    assert not [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)
                and Path(h.baseFilename) in (first, second)]  # fmt: skip
