"""A run's figures to a Prometheus Pushgateway, where teams already look (Grafana).

Why the Pushgateway: a run or a game day is a batch job; Prometheus cannot scrape it, so
the figures are pushed once at its end, under job ``gpuchaos`` and the grouping key
``{plan, experiment}`` (``plan="none"`` for a single ``gpuchaos run``). A push replaces the
group's previous figures (HTTP PUT), so the gateway always holds the latest run of each
experiment of each plan and Prometheus keeps their history. ``deploy/grafana/`` holds a
dashboard over these series.

Names follow Prometheus's conventions (``promtool check metrics`` accepts them): base units
in the name (``_seconds``), ``_total`` only on a counter (requests lost: counted from zero
by each run, as a counter restarts with its process), no label that the grouping key sets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from harness.errors import ReportError

log = logging.getLogger(__name__)

JOB = "gpuchaos"
#: The ``plan`` label of a run that is not part of a game day.
NO_PLAN = "none"

#: Every metric :func:`scorecard_registry` may expose (the names as a scrape shows them).
METRIC_NAMES: tuple[str, ...] = (
    "gpuchaos_experiment_score",
    "gpuchaos_experiment_passed",
    "gpuchaos_experiment_exit_code",
    "gpuchaos_slo_passed",
    "gpuchaos_slo_measured",
    "gpuchaos_slo_objective",
    "gpuchaos_recovered",
    "gpuchaos_time_to_recover_seconds",
    "gpuchaos_time_to_detect_seconds",
    "gpuchaos_requests_lost_total",
    "gpuchaos_requests_total",
    "gpuchaos_error_budget_spent_ratio",
    "gpuchaos_run_timestamp_seconds",
    "gpuchaos_run_duration_seconds",
)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _section(card: dict[str, Any], key: str) -> dict[str, Any]:
    value = card.get(key)
    return value if isinstance(value, dict) else {}


class _ScorecardCollector(Collector):
    """The scorecard's figures as metric families; a figure the run did not have (no fault,
    not recovered) is left out rather than sent as NaN."""

    def __init__(self, scorecard: dict[str, Any]) -> None:
        self.card = scorecard

    def collect(self) -> Iterator[Metric]:
        card = self.card
        run, recovery = _section(card, "run"), _section(card, "recovery")

        def gauge(name: str, doc: str, value: Any) -> Iterator[Metric]:
            number = _num(value)
            if number is not None:
                yield GaugeMetricFamily(name, doc, value=number)

        yield from gauge(
            "gpuchaos_experiment_score",
            "Resilience score of the run, 0 to 100 (scorecard score.value).",
            _section(card, "score").get("value"),
        )
        yield from gauge(
            "gpuchaos_experiment_passed",
            "1 when the run's verdict was pass (every SLO met), else 0.",
            1.0 if card.get("verdict") == "pass" else 0.0,
        )
        yield from gauge(
            "gpuchaos_experiment_exit_code",
            "The run's exit code: 0 pass, 1 an SLO missed, 2 the run could not complete.",
            card.get("exit_code"),
        )
        passed = GaugeMetricFamily(
            "gpuchaos_slo_passed", "1 when the SLO was met, else 0.", labels=["slo"]
        )
        measured = GaugeMetricFamily(
            "gpuchaos_slo_measured",
            "The SLO's measured value, in the SLO's own unit (ms, ratio, rps, s).",
            labels=["slo"],
        )
        objective = GaugeMetricFamily(
            "gpuchaos_slo_objective", "The SLO's objective, in its own unit.", labels=["slo"]
        )
        for slo in card.get("slos") or []:
            if not isinstance(slo, dict) or not slo.get("name"):
                continue
            name = str(slo["name"])
            passed.add_metric([name], 1.0 if slo.get("passed") else 0.0)
            for family, key in ((measured, "measured"), (objective, "objective")):
                value = _num(slo.get(key))
                if value is not None:
                    family.add_metric([name], value)
        yield from (f for f in (passed, measured, objective) if f.samples)
        if recovery.get("fault"):
            yield from gauge(
                "gpuchaos_recovered",
                "1 when the service recovered from the fault within the run, else 0.",
                1.0 if recovery.get("recovered") else 0.0,
            )
            if recovery.get("recovered"):
                yield from gauge(
                    "gpuchaos_time_to_recover_seconds",
                    "Seconds from the fault's start until the SLOs held again.",
                    recovery.get("time_to_recover_s"),
                )
            yield from gauge(
                "gpuchaos_time_to_detect_seconds",
                "Seconds from the fault's start until the SLIs first breached.",
                recovery.get("time_to_detect_s"),
            )
            lost = _num(recovery.get("requests_lost"))
            if lost is not None:
                lost_total = CounterMetricFamily(
                    "gpuchaos_requests_lost",
                    "Requests that failed because of the fault in this run.",
                )
                lost_total.add_metric([], lost)
                yield lost_total
        requests = _num(run.get("requests"))
        if requests is not None:
            total = CounterMetricFamily("gpuchaos_requests", "Requests sent in this run.")
            total.add_metric([], requests)
            yield total
        yield from gauge(
            "gpuchaos_error_budget_spent_ratio",
            "Share of the run's error budget spent (1 = all of it).",
            _section(card, "error_budget").get("spent"),
        )
        yield from gauge(
            "gpuchaos_run_timestamp_seconds",
            "Unix time the run's load started.",
            run.get("t0"),
        )
        yield from gauge(
            "gpuchaos_run_duration_seconds", "Seconds of load in the run.", run.get("duration_s")
        )


def scorecard_registry(scorecard: dict[str, Any]) -> CollectorRegistry:
    """A registry holding the scorecard's metrics only (nothing of this process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ScorecardCollector(scorecard))
    return registry


def push_scorecard(
    url: str,
    scorecard: dict[str, Any],
    experiment: str,
    plan: str | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Push the run's figures to the Pushgateway at ``url`` (``http://host:9091``), replacing
    the group ``{job="gpuchaos", plan, experiment}``. Raises :class:`ReportError` when the
    gateway cannot be reached or refuses the push."""
    key = {"plan": plan or NO_PLAN, "experiment": experiment}
    try:
        push_to_gateway(
            url,
            job=JOB,
            registry=scorecard_registry(scorecard),
            grouping_key=key,
            timeout=timeout_s,
        )
    except Exception as exc:  # URLError, HTTPError, OSError, a bad URL: all one failure
        raise ReportError(f"pushing to the Pushgateway {url} failed: {exc}") from exc
    log.info("pushed %s (plan %s) to the Pushgateway %s", experiment, key["plan"], url)
