"""``gpuchaos alerts RUN_DIR [--rules FILE] [--format table|json] [--manifest FILE]``.

Would our alerts have fired during this run, and when? Without ``--rules``: the SRE
workbook's multi-window, multi-burn-rate alerts for the experiment's availability and
latency objectives, scaled to the run (:mod:`harness.alerts.burnrate`). With ``--rules``:
the team's own Prometheus rule file (or ``PrometheusRule`` manifest) run by promtool over
the run's per-second SLIs (:mod:`harness.alerts.promtool`).

It also writes, into the run folder's ``alerts/`` (when the folder is writable):
``prometheusrule.yaml`` (the default alerts with production windows, for the cluster),
``rules-scaled.yaml`` (the same alerts with the run's windows: ``--rules`` on it reproduces
the built-in evaluation) and ``slis.om`` (the SLIs as OpenMetrics, for
``promtool tsdb create-blocks-from openmetrics``). ``--manifest FILE`` writes the
``PrometheusRule`` there too.

Works on any run folder, old and aborted ones included (only the experiment and the logs are
read). Exit 0; 2 for a folder that is not a run folder, an unreadable or broken rule file, or
no promtool for ``--rules``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMATS = ("table", "json")
FOLDER = "alerts"


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "alerts",
        help="evaluate alerting rules over a run's SLIs: the SRE workbook's burn-rate alerts "
        "(scaled to the run) or your own Prometheus rule file (promtool): fired, when, time "
        "to alert",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (results/<time>-<name>)")
    p.add_argument(
        "--rules",
        metavar="FILE",
        help="a Prometheus rule file or PrometheusRule manifest, run by promtool over the "
        "run (default: the built-in burn-rate alerts)",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    p.add_argument(
        "--manifest",
        metavar="FILE",
        help="also write the default alerts as a PrometheusRule manifest (production "
        "windows) to FILE",
    )
    p.set_defaults(func=cmd_alerts)


def _experiment_name(timeline: list[dict[str, Any]], run_dir: Path) -> str:
    for event in timeline:
        if event.get("kind") == "run_start" and isinstance(event.get("target"), str):
            return str(event["target"])
    return run_dir.name


def _write_files(run_dir: Path, files: dict[str, str]) -> list[Path]:
    """Write ``files`` into the run folder's ``alerts/``; a read-only folder is a warning."""
    folder = run_dir / FOLDER
    written = []
    try:
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
            written.append(folder / name)
    except OSError as exc:
        print(f"gpuchaos: warning: {folder}: not written ({exc.strerror or exc})", file=sys.stderr)
    return written


def cmd_alerts(args: argparse.Namespace) -> int:
    from harness.alerts.burnrate import MIN_WINDOW_S, alerts_block
    from harness.alerts.openmetrics import openmetrics_lines
    from harness.alerts.rules import prometheus_rule, rule_file_text
    from harness.alerts.sli import run_slis
    from harness.alerts.view import table_text
    from harness.errors import ConfigError
    from harness.scoring.rundir import load_run_spec, read_run_logs

    run_dir = Path(args.run_dir)
    _doc, spec = load_run_spec(run_dir)
    requests, timeline = read_run_logs(run_dir)
    slis = run_slis(requests, timeline, spec.slos, spec.load.request_timeout_s * 1000.0)
    name = _experiment_name(timeline, run_dir)
    block = alerts_block(slis)
    if args.rules:
        from harness.alerts.promtool import evaluate_rule_file

        rows = evaluate_rule_file(Path(args.rules), slis)
        source = f"rules of {args.rules} (promtool)"
    else:
        rows = block["rules"]
        source = (
            f"default burn-rate alerts, windows x {slis.run_s:.1f} s / 30 d "
            f"(at least {MIN_WINDOW_S} s)"
        )
    manifest = prometheus_rule(slis.objectives, name)
    written = _write_files(
        run_dir,
        {
            "prometheusrule.yaml": manifest,
            "rules-scaled.yaml": rule_file_text(slis.objectives, name, slis.run_s),
            "slis.om": "\n".join(openmetrics_lines(slis)) + "\n",
        },
    )
    if args.manifest:
        try:
            Path(args.manifest).write_text(manifest, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(args.manifest, "", f"cannot write: {exc.strerror or exc}") from None
    fault = slis.fault_start_s
    if args.format == "json":
        out = {
            "run_dir": str(run_dir),
            "experiment": name,
            "source": "rules" if args.rules else "default",
            "rules_file": args.rules,
            "run_s": block["run_s"],
            "fault_start_s": block["fault_start_s"],
            "objectives": block["objectives"],
            "alerts": rows,
            "files": [str(p) for p in written],
        }
        print(json.dumps(out, indent=2, allow_nan=False))
        return 0
    where = "no fault" if fault is None else f"first fault at {fault:.1f} s"
    print(f"{run_dir}: {name}, {slis.run_s:.1f} s of load, {where}")
    print(f"alerts: {source}")
    if rows:
        print(table_text(rows))
    else:
        print("no alert to evaluate (no availability or latency objective, or no alert rule)")
    for path in written:
        print(f"wrote {path}")
    if args.manifest:
        print(f"wrote {args.manifest}")
    return 0
