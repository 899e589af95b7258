"""The request figures the scorecard asks for, whether the log is in memory or read in parts.

Why a module of its own: the scorecard needs a handful of things from the requests (their
time range, the per-second table, figures over a window, a rolling window's worst, counts
per window, the requests a fault lost). A log of an hour fits in memory as one frame
(:class:`MemoryRequests`, the functions of :mod:`harness.scoring.slis`,
:mod:`~harness.scoring.persecond` and :mod:`~harness.scoring.analytics` on its arrays); a
soak of many hours does not, and :class:`harness.scoring.chunked.ChunkedRequests` answers
the same questions from parts kept on disk. Both answer with the same numbers, bit for bit
(``tests/unit/test_scoring_chunked.py``), so the scorecard does not know which it got.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pandas as pd

from harness.scoring.analytics import Interval, Spans, rolling_worst, span_counts, window_figures
from harness.scoring.persecond import per_second
from harness.scoring.recovery import failed_touching
from harness.scoring.slis import RequestArrays, failed_mask

#: A window to figure: its spans (None for the whole run), its length and whether only the
#: light figures are needed (see :func:`harness.scoring.slis.figures`).
Window = tuple[Spans, float, bool]


class RequestSource(Protocol):
    """What :func:`harness.scoring.scorecard.build_scorecard` asks of the requests."""

    def __len__(self) -> int: ...

    def time_range(self) -> tuple[float, float]:
        """The first start and the last end (only asked when there are requests)."""
        ...

    def per_second(self, t0: float, *, until: float | None = None) -> pd.DataFrame:
        """:func:`harness.scoring.persecond.per_second` of the requests."""
        ...

    def prefetch(self, windows: Sequence[Window]) -> None:
        """Say which windows :meth:`figures` will be asked for (a log in parts figures them
        all in the same passes)."""
        ...

    def figures(
        self, spans: Sequence[Interval] | None, duration_s: float, *, light: bool = False
    ) -> dict[str, Any]:
        """:func:`harness.scoring.analytics.window_figures` of the requests."""
        ...

    def counts(self, windows: Sequence[Spans]) -> list[tuple[int, int]]:
        """Requests and failed requests that ended in each window."""
        ...

    def rolling_worst(
        self, t0: float, load_end: float, window_s: float, name: str
    ) -> tuple[float, float | None]:
        """:func:`harness.scoring.analytics.rolling_worst` of the requests."""
        ...

    def lost(self, lo: float, hi: float) -> int:
        """Failed requests that started or ended in ``[lo, hi)``."""
        ...


class MemoryRequests:
    """A request log held as one frame (:func:`harness.scoring.slis.read_requests`)."""

    def __init__(self, df: pd.DataFrame, timeout_ms: float, slos: Any) -> None:
        self.df = df
        self.timeout_ms = timeout_ms
        self.slos = slos
        self.arrays = RequestArrays.build(df, timeout_ms, slos)

    def __len__(self) -> int:
        return len(self.df)

    def time_range(self) -> tuple[float, float]:
        return float(self.df["start"].min()), float(self.df["end"].max())

    def per_second(self, t0: float, *, until: float | None = None) -> pd.DataFrame:
        return per_second(self.df, t0, self.timeout_ms, until=until, slos=self.slos)

    def prefetch(self, windows: Sequence[Window]) -> None:
        return None

    def figures(
        self, spans: Sequence[Interval] | None, duration_s: float, *, light: bool = False
    ) -> dict[str, Any]:
        return window_figures(self.arrays, spans, duration_s, light=light)

    def counts(self, windows: Sequence[Spans]) -> list[tuple[int, int]]:
        return span_counts(self.arrays, windows)

    def rolling_worst(
        self, t0: float, load_end: float, window_s: float, name: str
    ) -> tuple[float, float | None]:
        return rolling_worst(self.arrays, t0, load_end, window_s, name)

    def lost(self, lo: float, hi: float) -> int:
        if not len(self.df):
            return 0
        return failed_touching(
            self.df["start"].to_numpy(dtype="float64"),
            self.df["end"].to_numpy(dtype="float64"),
            failed_mask(self.df).to_numpy(),
            lo,
            hi,
        )
