"""Scoring: SLIs from the request log, recovery analytics and the scorecard with its verdict.

See :mod:`harness.scoring.slis`, :mod:`harness.scoring.persecond`,
:mod:`harness.scoring.recovery` and :mod:`harness.scoring.scorecard` for the exact definitions.
"""

from harness.scoring.gpu import read_telemetry
from harness.scoring.persecond import PER_SECOND_COLUMNS, per_second, write_per_second
from harness.scoring.recovery import analyze_recovery, holding_seconds
from harness.scoring.scorecard import build_scorecard
from harness.scoring.slis import (
    DEFAULT_TIMEOUT_MS,
    effective_latency_ms,
    effective_ttft_ms,
    failed_mask,
    overall,
    read_requests,
)
from harness.scoring.spans import fault_pairs, fault_window, fault_windows, run_window
from harness.scoring.table import scorecard_table

__all__ = [
    "DEFAULT_TIMEOUT_MS",
    "PER_SECOND_COLUMNS",
    "analyze_recovery",
    "build_scorecard",
    "effective_latency_ms",
    "effective_ttft_ms",
    "failed_mask",
    "fault_pairs",
    "fault_window",
    "fault_windows",
    "holding_seconds",
    "overall",
    "per_second",
    "read_requests",
    "read_telemetry",
    "run_window",
    "scorecard_table",
    "write_per_second",
]
