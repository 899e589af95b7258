"""The terminal's scorecard table says when the verdict was reached while the load
generator was saturated (the same warning as the scorecard's instrument section)."""

from __future__ import annotations

from harness.scoring.table import scorecard_table


def _card(warning: str | None) -> dict[str, object]:
    return {
        "slos": [],
        "verdict": "pass",
        "exit_code": 0,
        "instrument": {"sampled": True, "warning": warning},
    }


def test_the_table_carries_the_instrument_warning() -> None:
    warning = "the load generator was saturated for 3 s (peak CPU 99% of a core)"
    lines = scorecard_table(_card(warning)).splitlines()
    assert lines[-1].startswith("instrument") and lines[-1].endswith(warning)
    assert lines[-2].startswith("verdict")


def test_no_line_without_a_warning() -> None:
    assert "instrument" not in scorecard_table(_card(None))
    assert "instrument" not in scorecard_table({"slos": [], "verdict": "pass", "exit_code": 0})
