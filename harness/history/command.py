"""``gpuchaos history [FOLDER ...] [--experiment NAME] [--since DATE] [--format ...]``.

Prints the history table (:func:`harness.history.history_table`) of the folders given
(default ``results/``) as an aligned table, CSV or JSON (one object per run, times in ISO
8601 UTC). Exit 0, also when nothing was found (it says so); 2 for a folder that does not
exist or a bad ``--since``.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

FORMATS = ("table", "csv", "json")


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "history",
        help="list past runs (run and game-day folders): verdict, score, recovery, SLOs",
    )
    p.add_argument(
        "folders",
        nargs="*",
        metavar="FOLDER",
        help="folders searched recursively for run and game-day folders (default: results)",
    )
    p.add_argument("--experiment", metavar="NAME", help="only this experiment's runs")
    p.add_argument(
        "--since",
        metavar="DATE",
        help="only runs from then on: a date or time (UTC unless it says otherwise) or an "
        "age such as 7d or 12h",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    p.set_defaults(func=cmd_history)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return value


def cmd_history(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.history import history_table, parse_since

    since = parse_since(args.since) if args.since else None
    folders = args.folders or ["results"]
    table = history_table(folders, experiment=args.experiment, since=since)
    if args.format == "json":
        rows = [
            {k: _jsonable(v) for k, v in row.items() if not (k.startswith("slo.") and v is None)}
            for row in table.astype(object).where(table.notna(), None).to_dict("records")
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if args.format == "csv":
        out = table.copy()
        out["time"] = out["time"].map(lambda t: t.isoformat().replace("+00:00", "Z"))
        print(out.to_csv(index=False), end="")
        return 0
    if table.empty:
        print(f"no scored runs in {', '.join(folders)}")
        return 0
    shown = table.drop(columns=["gameday_dir"]).copy()
    shown["time"] = shown["time"].map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S"))
    shown["experiment_sha256"] = shown["experiment_sha256"].map(
        lambda h: str(h)[:12] if isinstance(h, str) else "-"
    )
    shown = shown.rename(
        columns={
            "time": "time (UTC)",
            "experiment_sha256": "sha256",
            "harness_version": "version",
            "exit_code": "exit",
            "time_to_recover_s": "ttr_s",
            "requests_lost": "lost",
        }
    )
    with pd.option_context("display.width", 250, "display.max_columns", None):
        print(shown.to_string(index=False, na_rep="-"))
    return 0
