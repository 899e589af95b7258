"""The run's per-second SLIs as Prometheus series: an OpenMetrics file (to backfill into a
Prometheus with ``promtool tsdb create-blocks-from openmetrics``) and the ``input_series`` of
a ``promtool test rules`` file.

Series (counters are cumulative from the run's ``t0``; the sample at ``t0 + T`` counts the
requests that ended before it, one sample a second; see :mod:`harness.alerts.sli`):

- ``gpuchaos_requests_total{outcome="success"|"error"}`` (counter): requests that ended,
  by outcome (failed = status not 200 or an error text);
- ``gpuchaos_request_latency_seconds`` (histogram): ``_bucket{le}``, ``_count`` and ``_sum``
  of the requests' effective latency (a failed request counts as at least the client
  timeout); the bounds are 0.05 s to 60 s plus the experiment's latency objective, so
  ``le="<objective in seconds>"`` is always a bucket.

So an error ratio is ``sum(rate(gpuchaos_requests_total{outcome="error"}[5m])) /
sum(rate(gpuchaos_requests_total[5m]))`` and the share within a 1 s objective is
``sum(rate(gpuchaos_request_latency_seconds_bucket{le="1"}[5m])) /
sum(rate(gpuchaos_request_latency_seconds_count[5m]))``, as on a live Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from harness.alerts.sli import RunSLIs

REQUESTS = "gpuchaos_requests_total"
LATENCY = "gpuchaos_request_latency_seconds"


def le_text(bound_ms: float) -> str:
    """The ``le`` label of a bound in ms: seconds, shortest form (``0.25``, ``1``, ``30``)."""
    return format(bound_ms / 1000.0, ".12g")


def _cumulative(per_second: np.ndarray) -> np.ndarray:
    """Counter samples at ``T = 0 .. len``: what ended before ``t0 + T``."""
    return np.concatenate([np.zeros((1, *per_second.shape[1:])), np.cumsum(per_second, axis=0)])


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def series(slis: RunSLIs) -> list[tuple[str, np.ndarray]]:
    """``(series selector, samples at T = 0 .. seconds)`` of every exported series."""
    out: list[tuple[str, np.ndarray]] = [
        (f'{REQUESTS}{{outcome="success"}}', _cumulative(slis.requests - slis.errors)),
        (f'{REQUESTS}{{outcome="error"}}', _cumulative(slis.errors)),
    ]
    buckets = _cumulative(slis.buckets)
    for i, bound in enumerate(slis.bounds_ms):
        out.append((f'{LATENCY}_bucket{{le="{le_text(bound)}"}}', buckets[:, i]))
    count = _cumulative(slis.requests)
    out.append((f'{LATENCY}_bucket{{le="+Inf"}}', count))
    out.append((f"{LATENCY}_count", count))
    out.append((f"{LATENCY}_sum", np.round(_cumulative(slis.latency_sum_s), 6)))
    return out


def openmetrics_lines(slis: RunSLIs) -> Iterator[str]:
    """The OpenMetrics text of the run's series, timestamps in unix seconds, ``# EOF`` last.

    Each counter's samples come in time order; the histogram's come as one point (every
    bucket, count and sum) per second, as the format asks."""
    all_series = series(slis)
    times = [_number(round(slis.t0 + t, 3)) for t in range(slis.seconds + 1)]
    yield "# TYPE gpuchaos_requests counter"
    yield "# HELP gpuchaos_requests Requests that ended, by outcome (gpuchaos run SLIs)."
    for name, values in all_series[:2]:
        for t, value in zip(times, values, strict=True):
            yield f"{name} {_number(value)} {t}"
    yield f"# TYPE {LATENCY} histogram"
    yield f"# HELP {LATENCY} Effective latency of the requests that ended (gpuchaos run SLIs)."
    hist = all_series[2:]
    for i, t in enumerate(times):
        for name, values in hist:
            yield f"{name} {_number(values[i])} {t}"
    yield "# EOF"


def promtool_test_doc(rule_file: str, slis: RunSLIs, alert_names: list[str]) -> dict[str, Any]:
    """A ``promtool test rules`` document: the run's series from time 0 (= ``t0``), and an
    ``alert_rule_test`` expecting no alert at every second for every alert name, so that
    promtool reports each (alert, second) where one fired."""
    inputs = [
        {"series": name, "values": " ".join(_number(v) for v in values)}
        for name, values in series(slis)
    ]
    checks = [
        {"eval_time": f"{t}s", "alertname": name, "exp_alerts": []}
        for t in range(slis.seconds + 1)
        for name in alert_names
    ]
    return {
        "rule_files": [rule_file],
        "evaluation_interval": "1s",
        "tests": [{"interval": "1s", "input_series": inputs, "alert_rule_test": checks}],
    }
