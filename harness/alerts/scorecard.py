"""The scorecard's ``alerts`` block: "time to alert" of every scored run.

Why here and cheap: ``gpuchaos run`` and ``gpuchaos score`` call it on every run, so it is
numpy over per-second counts (:mod:`harness.alerts.burnrate`), never promtool. A log read in
parts (a soak of hours) is counted a partition at a time, in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from harness.alerts.burnrate import alerts_block
from harness.alerts.sli import run_slis
from harness.scoring.parts import ARRAYS, as_arrays
from harness.scoring.slis import RequestArrays


def _blocks(requests: Any) -> Iterator[RequestArrays]:
    """The request arrays of a :class:`~harness.scoring.chunked.ChunkedRequests`, a
    partition at a time (after its far-off rule, as the scorer counts them)."""
    for cols in requests._scan(ARRAYS):
        yield as_arrays(cols)


def scorecard_alerts(
    requests: pd.DataFrame | Any,
    timeline: Sequence[Mapping[str, Any]],
    slos: Any,
    timeout_ms: float,
) -> dict[str, Any]:
    """The default alerts of a run, evaluated (:func:`harness.alerts.burnrate.alerts_block`)."""
    blocks = None if isinstance(requests, pd.DataFrame) else _blocks(requests)
    return alerts_block(run_slis(requests, timeline, slos, timeout_ms, blocks))
