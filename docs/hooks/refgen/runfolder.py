"""The servers' metrics, what --pushgateway pushes, the run folder's files, the request
columns, the timeline's event kinds and the telemetry rows."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path
from typing import Any

from refgen import GENERATED_NOTE, NONE, ROOT, cell


def _registry_families(registry: Any) -> list[tuple[str, str, str, list[str]]]:
    """(name, type, help, labels) of every family a prometheus_client registry exports."""
    declared: dict[str, tuple[str, ...]] = {}  # labels of metrics with no child yet
    for collector in getattr(registry, "_collector_to_names", {}):
        declared[getattr(collector, "_name", "")] = tuple(getattr(collector, "_labelnames", ()))
    out = []
    for family in registry.collect():
        labels = sorted(
            {k for s in family.samples for k in s.labels if k != "le"}
            | set(declared.get(family.name, ()))
        )
        name = family.name + ("_total" if family.type == "counter" else "")
        out.append((name, family.type, family.documentation, labels))
    return out


def server_metrics() -> dict[str, list[tuple[str, str, str, list[str]]]]:
    """The metrics of each reference server, from a real instance of its metrics class."""
    from workloads.classifier.metrics import ClassifierMetrics
    from workloads.llm.metrics import Metrics

    found = {
        "LLM server (`workloads/llm`)": _registry_families(
            Metrics("gpuchaos", "r", "cpu").registry
        ),
        "Classifier (`workloads/classifier`)": _registry_families(
            ClassifierMetrics("classifier", "r", "cpu").registry
        ),
    }
    known = {row[0] for rows in found.values() for row in rows}
    extra = [row for row in _source_metrics() if row[0] not in known]
    if extra:
        found["Both servers, on CUDA or when enabled (read from the source)"] = extra
    return found


def _source_metrics() -> list[tuple[str, str, str, list[str]]]:
    """Metrics constructed with literal names in ``workloads/`` that a CPU instance does
    not export (the GPU memory gauges exist only on CUDA)."""
    kinds = {"Gauge": "gauge", "Counter": "counter", "Histogram": "histogram"}
    rows: list[tuple[str, str, str, list[str]]] = []
    for path in sorted((ROOT / "workloads").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            kind = kinds.get(node.func.id)
            if kind is None or len(node.args) < 2:
                continue
            name, doc = node.args[0], node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                text = str(doc.value) if isinstance(doc, ast.Constant) else ""
                full = name.value + ("_total" if kind == "counter" else "")
                where = f"{text} (`{path.relative_to(ROOT)}`)"
                rows.append((full, kind, where, []))
    return rows


def pushed_metrics() -> list[tuple[str, str, str, list[str]]]:
    """What ``--pushgateway`` pushes, from the pusher's own registry."""
    from harness.report.pushgateway import scorecard_registry

    return _registry_families(scorecard_registry(_sample_scorecard()))


def _sample_scorecard() -> dict[str, Any]:
    return {
        "verdict": "pass",
        "exit_code": 0,
        "score": {"value": 90.0},
        "slos": [{"name": "p99_latency_ms", "objective": 1.0, "measured": 1.0, "passed": True}],
        "recovery": {"recovered": True, "time_to_recover_s": 1.0, "time_to_detect_s": 0.0},
        "run": {"requests": 1, "errors": 0, "duration_s": 1.0, "start": 0.0},
    }


def _metric_table(rows: list[tuple[str, str, str, list[str]]]) -> list[str]:
    out = ["| metric | type | labels | what it counts |", "|---|---|---|---|"]
    for name, kind, doc, labels in sorted(rows):
        label_text = ", ".join(f"`{label}`" for label in labels) or NONE
        out.append(f"| `{name}` | {kind} | {label_text} | {cell(doc)} |")
    return [*out, ""]


# --- run folder -------------------------------------------------------------------------

#: What each timeline event kind means; a kind without an entry still gets a row.
EVENT_MEANINGS = {
    "run_start": "the run began (harness version, replicas and their pids)",
    "run_end": "the run ended; a folder without it scores as incomplete",
    "load_start": "the load shape started (t0 of every figure)",
    "load_end": "the load stopped (`records`, and `scheduled` in open loop)",
    "experiment_start": "chaoslib started the experiment",
    "experiment_end": "chaoslib finished it (its status)",
    "fault_start": "a fault began (the timeline control), with its target",
    "fault_end": "a fault ended",
    "fault_effect": "the fault's proof and its injection latency",
    "node_down": "a node went down (lost, NotReady, cordoned, deleted)",
    "node_up": "a node came back",
    "replica_start": "a replica process (or pod) started",
    "replica_exit": "a replica exited (reason: node_down, liveness, a signal, evicted ...)",
    "replica_ready": "a replica became Ready (readiness passed)",
    "replica_unready": "a Ready replica failed readiness",
    "replica_ejected": "the router's outlier ejection took a replica out",
    "replica_returned": "an ejected replica came back",
    "scale": "an autoscaler or scheduler decision (from/to, outcome, metric)",
    "phase": "the load shape entered a phase (baseline, spike, ...)",
    "abort": "an abort guard tripped or the run was interrupted (reason)",
    "drill_action": "a trainee's action in a drill (arguments, result)",
}


def event_kinds() -> list[str]:
    from harness.timeline import EventKind

    return list(typing.get_args(EventKind))


def record_columns() -> list[tuple[str, str, bool]]:
    """(column, comment from harness/records.py, optional) of ``requests.csv``."""
    from harness import records

    comments: dict[str, str] = {}
    for line in Path(records.__file__).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith('"') and "#" in stripped:
            name, _, comment = stripped.partition("#")
            comments[name.strip().strip(",").strip('"')] = comment.strip()
    return [(c, comments.get(c, ""), False) for c in records.COLUMNS] + [
        (c, comments.get(c, ""), True) for c in records.OPTIONAL_COLUMNS
    ]


def run_folder_files() -> list[tuple[str, str]]:
    """(attribute, file name) of every file a run folder may hold, from RunDir."""
    from harness.rundir import RunDir

    probe = RunDir(Path("RUN"))
    out = []
    for name in sorted(dir(probe)):
        if name.startswith("_"):
            continue
        try:
            value = getattr(probe, name)
        except Exception:
            continue
        if isinstance(value, Path) and value != Path("RUN"):
            out.append((name, str(value.relative_to("RUN"))))
    return out


def metrics_page() -> str:
    out = [
        "# Metrics, run folder and telemetry\n",
        GENERATED_NOTE,
        "## What the reference servers export\n",
        "Each replica serves these at `GET /metrics` (Prometheus text format), read from a "
        "real instance of each server's metrics class. vLLM's names are used where vLLM has "
        "one, so dashboards and autoscalers built for vLLM read them as they are.\n",
    ]
    for title, rows in server_metrics().items():
        out += [f"### {title}\n", *_metric_table(rows)]
    pushed = pushed_metrics()
    if pushed:
        out += [
            "## What `--pushgateway` pushes\n",
            "Per experiment, job `gpuchaos`, grouping key `{plan, experiment}` "
            "(see [Game days](../guides/game-days.md)).\n",
            *_metric_table(pushed),
        ]
    out += [
        "## The run folder\n",
        "Every file name a run folder may hold, from `harness/rundir.py` (`RunDir`); "
        "[Telemetry and reports](../telemetry-and-reports.md) says what each holds.\n",
        "| `RunDir` attribute | file |",
        "|---|---|",
        *[f"| `{attr}` | `{name}` |" for attr, name in run_folder_files()],
        "",
        "## `requests.csv` columns\n",
        "One row per request, failed and timed-out ones included (`harness/records.py`).\n",
        "| column | meaning | |",
        "|---|---|---|",
        *[
            f"| `{c}` | {cell(comment)} | {'optional (after the others)' if optional else ''} |"
            for c, comment, optional in record_columns()
        ],
        "",
        "## `timeline.jsonl` event kinds\n",
        "One JSON object per line: `{time, kind, target, details}` (`harness/timeline.py`).\n",
        "| kind | meaning |",
        "|---|---|",
        *[
            f"| `{k}` | {cell(EVENT_MEANINGS.get(k, '(see the code that emits it)'))} |"
            for k in event_kinds()
        ],
        "",
        "## `telemetry.csv` rows\n",
        "`time,source,metric,value`; the sources and metrics, from the sampler's own "
        "description (`harness/telemetry/sampler.py`):\n",
        "```text",
        *telemetry_doc(),
        "```\n",
    ]
    return "\n".join(out)


def telemetry_doc() -> list[str]:
    from harness.telemetry import sampler

    return (inspect.getdoc(sampler) or "").splitlines()
