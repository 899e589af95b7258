"""Alerts tested against the run: would the team's alerts have fired during this chaos run,
and how long after the fault?

- :mod:`harness.alerts.sli`: the run's per-second SLIs (requests, errors, requests over the
  latency objective, a latency histogram) and the experiment's objectives.
- :mod:`harness.alerts.burnrate`: the SRE workbook's multi-window, multi-burn-rate alerts,
  scaled to the run's length, evaluated over those SLIs (cheap: numpy, no Prometheus); the
  scorecard's ``alerts`` block.
- :mod:`harness.alerts.rules`: the same alerts as Prometheus rules (scaled, for testing) and
  as a ``PrometheusRule`` manifest (production windows, for the cluster).
- :mod:`harness.alerts.openmetrics` and :mod:`harness.alerts.promtool`: the SLIs exported as
  OpenMetrics and a team's own rule file run by Prometheus' rule engine (``promtool test
  rules``).
- :mod:`harness.alerts.view`: the scorecard block as a summary line and an HTML table.
- :mod:`harness.alerts.command`: ``gpuchaos alerts RUN_DIR``.
"""
