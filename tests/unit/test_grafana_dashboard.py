"""deploy/grafana/gpuchaos-gamedays.json: every PromQL expression names only metrics that
push_scorecard produces (from a real scored run) and only the labels they carry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harness.report.pushgateway import METRIC_NAMES, scorecard_registry
from tests.support.runs import scored_run

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "gpuchaos-gamedays.json"
#: The labels a pushed series has: the metric's own (slo), the grouping key, the job, and
#: instance (which Prometheus adds when it scrapes the gateway).
LABELS = {"slo", "plan", "experiment", "job", "instance"}
KEYWORDS = {"by", "without", "on", "ignoring", "bool", "and", "or", "unless", "offset"}
KEYWORDS |= {"group_left", "group_right"}


def _exprs(node: Any) -> Iterator[str]:
    """Every ``expr`` of the dashboard and every variable's query."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def _names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) of a PromQL expression (or label_values(...) query)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals: $variables, values
    labels: set[str] = set()
    for group in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", group))
    text = re.sub(r"\{[^}]*\}", " ", text)
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", text):
        labels |= {g.strip() for g in group.split(",") if g.strip()}
    text = re.sub(r"\b(?:by|without)\s*\([^)]*\)", " ", text)
    m = re.match(r"\s*label_values\((.*),\s*(\w+)\)\s*$", text)
    if m:  # a variable's query: label_values(metric{...}, label)
        labels.add(m.group(2))
        text = m.group(1)
    words = {
        m.group(1)
        for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)", text)
        if not text[m.end() :].lstrip().startswith("(")  # a function's name
    }
    return words - KEYWORDS, labels


def test_dashboard_queries_only_what_push_scorecard_produces(tmp_path: Path) -> None:
    card = json.loads((scored_run(tmp_path / "run") / "scorecard.json").read_text())
    exposition = generate_latest(scorecard_registry(card)).decode()
    produced = {s.name for f in text_string_to_metric_families(exposition) for s in f.samples}
    assert produced <= set(METRIC_NAMES)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = list(_exprs(dashboard))
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        metrics, labels = _names(expr)
        assert metrics, expr
        assert metrics <= produced, (expr, metrics - produced)
        assert labels <= LABELS, (expr, labels - LABELS)
        used |= metrics
    # what the issue asks to plot over weeks
    assert {
        "gpuchaos_experiment_score",
        "gpuchaos_slo_passed",
        "gpuchaos_time_to_recover_seconds",
    } <= used


def test_dashboard_shape() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "gpuchaos-gamedays" and dashboard["time"]["from"] == "now-90d"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    kinds = {p["title"]: p["type"] for p in panels}
    assert kinds["SLO pass / fail per experiment"] == "status-history"  # the heat map
    assert kinds["Resilience score per experiment"] == "timeseries"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "plan", "experiment"}
    for p in panels:
        assert p["datasource"]["uid"] == "${datasource}"
        for t in p["targets"]:
            assert "$plan" in t["expr"] and "$experiment" in t["expr"], t["expr"]


def test_the_expression_reader() -> None:
    metrics, labels = _names(
        'max by (plan, experiment) (gpuchaos_x{plan=~"$plan", slo="a"}) / time() > 0.5'
    )
    assert metrics == {"gpuchaos_x"} and labels == {"plan", "experiment", "slo"}
    metrics, labels = _names('label_values(gpuchaos_y{plan=~"$plan"}, experiment)')
    assert metrics == {"gpuchaos_y"} and labels == {"plan", "experiment"}
