"""``gpuchaos drill [POOL]``: an incident drill (see :mod:`harness.drill`), and
``gpuchaos drill act RUN_DIR ACTION [ARGS]``: the trainee's actions from a terminal.

Exit codes: 0 the drill ran to its end (time up, or declared resolved: the score is in the
debrief, not the exit code); 2 it could not run (bad pack, the platform never Ready, an
error, Ctrl-C), or an action was refused.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from harness.cli_support import _install, _log_to_file, seed_option

log = logging.getLogger(__name__)

DEFAULT_POOL = "experiments/drills/cpu-basics.yaml"
#: Where drill folders go by default: results/drills/<UTC time>-<pack>.
DRILLS_ROOT = Path("results") / "drills"


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drill",
        help="an incident drill: a hidden fault under live traffic, a live page to act from, "
        "a scored debrief (or: drill act RUN_DIR ACTION [ARGS])",
        description="Draw a scenario from a drill pack (seeded), run it hidden under live "
        "traffic with a live page for the trainee, and write a scored debrief. "
        "'gpuchaos drill act RUN_DIR ACTION [ARGS]' acts from a terminal: ack; diagnose KIND "
        "TARGET; restart REPLICA; cordon NODE; uncordon NODE; drain NODE; scale NODE N; "
        "eject REPLICA; readmit REPLICA; resolve.",
    )
    p.add_argument(
        "pool", nargs="?", default=DEFAULT_POOL, help=f"drill pack (default {DEFAULT_POOL})"
    )
    p.add_argument("act_args", nargs="*", help=argparse.SUPPRESS)
    p.add_argument(
        "--seed",
        type=seed_option,
        metavar="N",
        help="draw the scenario with this seed (default: random)",
    )
    p.add_argument(
        "--serve",
        nargs="?",
        const="127.0.0.1:0",
        metavar="[HOST:]PORT",
        help="where the live page listens (default 127.0.0.1 and a free port)",
    )
    p.add_argument(
        "--serve-remote",
        action="store_true",
        help="allow a non-loopback --serve address (anyone who can reach it and has "
        "the printed token can act)",
    )
    p.add_argument(
        "--no-trainee",
        action="store_true",
        help="the baseline: the same scenario left alone (no actions, no page "
        "unless --serve); prints the figures to store in the pack",
    )
    p.add_argument(
        "--facilitator",
        action="store_true",
        help="also serve the facilitator page: the truth live, faults injected by hand",
    )
    p.add_argument(
        "--baseline",
        metavar="DIR",
        help="a --no-trainee drill folder of the same scenario to compare with",
    )
    p.add_argument("--out", help="drill folder (default: results/drills/<UTC time>-<pack>)")
    p.set_defaults(func=cmd_drill)


def cmd_drill(args: argparse.Namespace) -> int:
    if args.pool == "act":
        from harness.drill.act import cmd_act

        return cmd_act(args.act_args)
    if args.act_args:
        from harness.errors import ConfigError

        raise ConfigError(
            "drill", " ".join(args.act_args)[:60], "unexpected arguments after the pack"
        )
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    import secrets

    from harness.config.base import MAX_SEED
    from harness.drill.pack import load_pack
    from harness.drill.pick import pick_scenario
    from harness.drill.run import Drill, DrillOptions
    from harness.live.server import LiveServer, parse_bind
    from harness.rundir import RunDir, new_run_dir

    loaded = load_pack(args.pool)
    host, port = parse_bind(args.serve or "127.0.0.1:0")
    LiveServer.check_host(host, args.serve_remote)  # before anything is made or deployed
    seed = args.seed if args.seed is not None else secrets.randbelow(MAX_SEED + 1)
    options = DrillOptions(
        seed=seed,
        host=host,
        port=port,
        serve=args.serve is not None,
        allow_remote=args.serve_remote,
        trainee=not args.no_trainee,
        facilitator=args.facilitator,
    )
    options.baseline = _baseline(args.baseline, loaded, pick_scenario(loaded, seed))
    run_dir = new_run_dir(f"drill-{loaded.name}", args.out, root=DRILLS_ROOT)
    drill = Drill(loaded, options, run_dir)
    _log_to_file(RunDir(run_dir).harness_log)
    if options.trainee:
        _quiet_console()
    if args.serve_remote:
        print(
            "gpuchaos: warning: --serve-remote: the page may listen beyond this machine; "
            "anyone with the printed URL (its token) can act on the drill"
        )
    print(f"drill {loaded.name}, seed {seed}: {loaded.pack.title} -> {run_dir}")
    try:
        result = drill.run()
    finally:
        _install("run file", None)
    _print_result(result, run_dir)
    if result["exit_code"] == 2:  # the contract: an exit 2 ends with its one error line
        from harness.errors import RunAborted

        raise RunAborted(f"the drill ended by {result['ended_by']} (debrief: {run_dir})")
    return int(result["exit_code"])


def _quiet_console() -> None:
    """The trainee may watch the terminal: keep lines that name a fault off it (they stay
    in harness.log)."""
    from harness import cli_support
    from harness.drill.view import hidden_words

    words = [w.lower() for w in hidden_words()] + ["fault", "incident"]
    console = cli_support._handlers.get("console")
    if console is not None:
        console.addFilter(lambda r: not any(w in r.getMessage().lower() for w in words))


def _baseline(folder: str | None, loaded: Any, scenario: Any) -> dict[str, Any] | None:
    """The damage of the scenario left alone: a --no-trainee drill folder, else the pack's
    stored figures for this scenario, else None."""
    import json

    from harness.errors import ConfigError

    if folder is not None:
        path = Path(folder) / "drill.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(str(path), "", f"not a drill folder's drill.json ({exc})") from None
        theirs = data.get("scenario") or {}
        same = (theirs.get("fault"), theirs.get("target"), theirs.get("at_s"))
        if same != (scenario.fault, scenario.target, scenario.at_s) or not data.get("damage"):
            raise ConfigError(
                str(path), "scenario", "not the same scenario (use the same pack and seed)"
            )
        return {**data["damage"], "source": f"run {folder}"}
    for stored in loaded.pack.baselines:
        if (stored.fault, stored.target) == (scenario.fault, scenario.target) and abs(
            stored.at_s - scenario.at_s
        ) < 0.05:
            return {**stored.damage.model_dump(), "source": "pack"}
    return None


def _print_result(drill: dict[str, Any], run_dir: Path) -> None:
    sc = drill["scenario"]
    score = drill["score"]
    print(
        f"the incident: {sc['fault']} on {sc['target']} at {drill['injected_at_s']} s "
        f"(seed {sc['seed']}); ended by {drill['ended_by']}"
    )
    if drill["trainee_run"]:
        print(
            f"score {score['score']:g} / {score['out_of']:g}: "
            + ", ".join(f"{k} {p['points']:g}/{p['out_of']:g}" for k, p in score["parts"].items())
        )
    elif drill.get("damage"):
        d = drill["damage"]
        print("baseline figures for the pack's baselines:")
        print(
            f"  - {{fault: {sc['fault']}, target: {sc['target']}, at_s: {sc['at_s']}, "
            f"seed: {sc['seed']}, "
            f"damage: {{requests: {d['requests']}, failed: {d['failed']}, bad_s: {d['bad_s']}, "
            f"window_s: {d['window_s']}}}}}"
        )
    print(f"debrief: {run_dir / 'debrief.html'}")
    print(f"results: {run_dir}")
