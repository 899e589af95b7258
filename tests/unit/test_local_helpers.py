"""Pure helpers of the local platform: device resolution and log tails."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.platforms.local import devices
from harness.platforms.local.process import last_lines


@pytest.mark.parametrize(
    ("setting", "gpus", "expected"),
    [
        ("cpu", 1, "cpu"),
        ("cuda", 0, "cuda:0"),
        ("cuda:3", 0, "cuda:3"),
        ("auto", 0, "cpu"),
        ("auto", 2, "cuda:0"),
    ],
)
def test_resolve_device(
    monkeypatch: pytest.MonkeyPatch, setting: str, gpus: int, expected: str
) -> None:
    monkeypatch.setattr(devices, "gpu_count", lambda: gpus)
    assert devices.resolve_device(setting) == expected


def test_last_lines_skips_blanks_and_tolerates_missing(tmp_path: Path) -> None:
    log = tmp_path / "r.log"
    log.write_bytes(b"one\n\ntwo\nthree \xff\n\n")
    assert last_lines(log, 2) == ["two", "three \ufffd"]
    assert last_lines(tmp_path / "missing.log") == []
