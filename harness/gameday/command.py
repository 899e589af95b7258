"""``gpuchaos gameday PLAN``: run a game-day plan (see :mod:`harness.gameday`).

Exit codes: 0 every experiment passed, 1 an SLO missed, 2 an experiment could not run (bad
input, the platform never healthy, an error, an interrupted game day).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from harness.cli_support import _install, _log_to_file, allow_module_option, seed_option

log = logging.getLogger(__name__)

#: Where game-day folders go by default: results/gamedays/<UTC time>-<plan>.
GAMEDAYS_ROOT = Path("results") / "gamedays"


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gameday",
        help="run a game-day plan: several experiments against one deployment",
        description="Run the experiments of a game-day plan one after another against one "
        "deployment, with a reset and a health gate between them.",
    )
    p.add_argument("plan", help="plan file (YAML), e.g. experiments/gamedays/cpu-weekly.yaml")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the plan and every experiment; print what would run, in order, and for "
        "how long; deploy nothing",
    )
    p.add_argument("--out", help="game-day folder (default: results/gamedays/<UTC time>-<plan>)")
    p.add_argument(
        "--seed",
        type=seed_option,
        metavar="N",
        help="shuffle the order with this seed (over the plan's)",
    )
    p.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push each experiment's figures to this Prometheus Pushgateway (a failure warns)",
    )
    p.add_argument(
        "--kube-context",
        metavar="NAME",
        help="kubernetes: the kube context the game day must use (overrides platform.context)",
    )
    allow_module_option(p)
    p.set_defaults(func=cmd_gameday)


def cmd_gameday(args: argparse.Namespace) -> int:
    from harness.gameday.dryrun import dry_run_lines
    from harness.gameday.prepare import load_plan
    from harness.gameday.record import GAMEDAY_LOG, GAMEDAY_TIMELINE
    from harness.gameday.run import GamedayRun
    from harness.rundir import RunDir, new_run_dir

    loaded = load_plan(args.plan, args.seed, args.allow_module)
    if args.dry_run:
        for line in dry_run_lines(loaded):
            print(f"dry run: {line}")
        return 0
    folder = new_run_dir(loaded.name, args.out, root=GAMEDAYS_ROOT)
    gameday_log = folder / GAMEDAY_LOG

    def run_log(run_dir: Path | None) -> None:
        _log_to_file(RunDir(run_dir).harness_log if run_dir is not None else gameday_log)

    run_log(None)
    try:
        log.info("game day %s: %s -> %s", loaded.name, loaded.plan.title, folder)
        code = GamedayRun(
            loaded,
            folder,
            kube_context=args.kube_context,
            pushgateway=args.pushgateway,
            run_log=run_log,
        ).run()
    finally:
        _install("run file", None)  # the game day's logs are complete
    _print_summary(folder)
    print(f"platform events: {folder / GAMEDAY_TIMELINE}")
    print(f"results: {folder}")
    return code


def _print_summary(folder: Path) -> None:
    import json

    from harness.gameday.record import GAMEDAY_FILE

    data = json.loads((folder / GAMEDAY_FILE).read_text(encoding="utf-8"))
    width = max(len(e["name"]) for e in data["experiments"])
    deploy = data.get("deploy_s")
    print(f"game day {data['plan_name']}: {data['title']}")
    if deploy is not None:
        print(f"  deploy {deploy:.1f} s")
    for i, e in enumerate(data["experiments"], 1):
        reset = f"reset {e['reset_s']:.1f} s" if e.get("reset_s") is not None else ""
        reason = f"  {e['reason']}" if e.get("reason") else ""
        print(f"  {i:2d}. {e['name']:<{width}}  {e['status']:<10} {reset:<13}{reason}")
    print(f"exit code {data['exit_code']}")
