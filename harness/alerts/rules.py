"""The default alerts (:mod:`harness.alerts.burnrate`) as Prometheus alerting rules.

Two forms of the same rules:

- **scaled to a run** (:func:`rule_groups` with ``run_s``): the windows the run was
  evaluated with; ``gpuchaos alerts RUN --rules`` on this file gives the same firing times
  as the built-in evaluation, through Prometheus' own engine;
- **for the cluster** (:func:`prometheus_rule`): the workbook's windows (1 h / 5 min, ...),
  wrapped in a ``PrometheusRule`` (``monitoring.coreos.com/v1``) for the Prometheus
  Operator.

The expressions read the series of :mod:`harness.alerts.openmetrics`
(``gpuchaos_requests_total{outcome}`` and the ``gpuchaos_request_latency_seconds``
histogram). In a cluster, record those names from the serving stack's own metrics (the guide
docs/guides/alerts.md shows how) or edit the expressions.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from harness.alerts.burnrate import BurnRateAlert, default_alerts, duration_text
from harness.alerts.openmetrics import LATENCY, REQUESTS, le_text


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the expressions) as literal blocks, as people write rules."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(doc: Any) -> str:
    """YAML of a rule file or manifest, expressions as literal blocks."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)


def k8s_name(text: str) -> str:
    """``text`` as a Kubernetes object name (lower case, digits and ``-``, 63 at most)."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:63] or "run"


def ratio_expr(alert: BurnRateAlert, window_s: int, latency_ms: float | None) -> str:
    """PromQL for the bad-event ratio of ``alert``'s objective over ``window_s``."""
    w = duration_text(window_s)
    if alert.slo == "availability":
        bad = f'sum(rate({REQUESTS}{{outcome="error"}}[{w}]))'
        total = f"sum(rate({REQUESTS}[{w}]))"
    else:
        assert latency_ms is not None
        total = f"sum(rate({LATENCY}_count[{w}]))"
        bad = f'({total} - sum(rate({LATENCY}_bucket{{le="{le_text(latency_ms)}"}}[{w}])))'
    return f"{bad} / {total}"


def alert_rule(
    alert: BurnRateAlert, latency_ms: float | None, run_s: float | None, experiment: str
) -> dict[str, Any]:
    """One alerting rule: both windows over the threshold (windows scaled to ``run_s`` when
    given, the workbook's when None)."""
    long_s, short_s = alert.windows(run_s)
    threshold = repr(alert.threshold)
    expr = (
        f"({ratio_expr(alert, long_s, latency_ms)}) > {threshold}\n"
        f"and\n({ratio_expr(alert, short_s, latency_ms)}) > {threshold}"
    )
    what = "requests failing" if alert.slo == "availability" else "requests over the latency SLO"
    return {
        "alert": alert.name,
        "expr": expr,
        "labels": {
            "severity": alert.severity,
            "slo": alert.slo,
            "experiment": experiment,
        },
        "annotations": {
            "summary": (
                f"{alert.slo} error budget burning at {alert.burn_rate:g}x over "
                f"{duration_text(long_s)} and {duration_text(short_s)}"
            ),
            "description": (
                f"Share of {what} above {alert.threshold:g} ({alert.burn_rate:g}x the "
                f"budget of a {alert.target:g} objective) over both windows."
            ),
        },
    }


def rule_groups(objectives: Any, experiment: str, run_s: float | None) -> list[dict[str, Any]]:
    """The ``groups`` of a Prometheus rule file: one group per objective that is set."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for alert in default_alerts(objectives):
        rule = alert_rule(alert, objectives.latency_ms, run_s, experiment)
        groups.setdefault(alert.slo, []).append(rule)
    return [
        {"name": f"gpuchaos-{experiment}-{slo}-burn-rate", "rules": rules}
        for slo, rules in groups.items()
    ]


def rule_file_text(objectives: Any, experiment: str, run_s: float | None) -> str:
    """A Prometheus rule file (YAML) of :func:`rule_groups`."""
    return dump({"groups": rule_groups(objectives, experiment, run_s)})


def prometheus_rule(objectives: Any, experiment: str, namespace: str | None = None) -> str:
    """A ``PrometheusRule`` manifest (YAML) of the default alerts with the workbook's
    production windows, for the Prometheus Operator in the user's cluster."""
    metadata: dict[str, Any] = {
        "name": k8s_name(f"gpuchaos-{experiment}-slo-alerts"),
        "labels": {"app.kubernetes.io/managed-by": "gpuchaos", "role": "alert-rules"},
    }
    if namespace:
        metadata["namespace"] = namespace
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {"groups": rule_groups(objectives, experiment, None)},
    }
    return dump(doc)
