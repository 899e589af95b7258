"""``gpuchaos tenancy compare RUN_DIR...``: the sharing modes side by side.

Prints the Markdown table of :mod:`harness.report.tenancy_compare` (``--format json``: its
rows) for tenancy run folders, typically the same experiment under time-slicing, mps and mig
(``--var``). A folder without a scorecard is scored first. Exit 0; 2 for a folder that is
not a tenancy run.
"""

from __future__ import annotations

import argparse
import json


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tenancy", help="multi-tenant runs: compare sharing modes")
    inner = p.add_subparsers(dest="tenancy_command", required=True, metavar="COMMAND")
    c = inner.add_parser(
        "compare",
        help="a table of tenancy runs (one per sharing mode): each tenant's verdict and "
        "availability, the blast radius, utilization and GPU-seconds per tenant",
    )
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="tenancy run folders")
    c.add_argument("--format", choices=("markdown", "json"), default="markdown")
    c.set_defaults(func=cmd_tenancy_compare)


def cmd_tenancy_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.report.tenancy_compare import compare_markdown, compare_rows, load_tenancy_card

    cards = [(Path(d).name, load_tenancy_card(d)) for d in args.run_dirs]
    rows = compare_rows(cards)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(compare_markdown(rows), end="")
    return 0
