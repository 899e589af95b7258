"""The ``gpuchaos`` command line. The only place that configures logging.

Exit codes: 0 all SLOs met, 1 an SLO missed, 2 the harness could not run the experiment
(bad input, workload never Ready, fault had no effect, interrupted run).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from harness import __version__
from harness.errors import HarnessError

log = logging.getLogger("harness.cli")


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    # chaoslib logs every step at INFO; keep the terminal to the harness's own story
    console.addFilter(lambda r: verbose or not r.name.startswith(("chaoslib", "chaostoolkit")))
    root.addHandler(console)
    for noisy in ("urllib3", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _log_to_file(path: Path) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    )
    logging.getLogger().addHandler(handler)


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.experiment import load_experiment, parse_vars

    exp = load_experiment(args.experiment, parse_vars(args.var))
    nodes = ", ".join(f"{n.name}({n.replicas}x{n.device})" for n in exp.spec.platform.nodes)
    print(f"{exp.path}: valid: {exp.title} [nodes: {nodes}]")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness.experiment import load_experiment, parse_vars
    from harness.rundir import LOG_FILE, new_run_dir
    from harness.runner import execute
    from harness.scoring.scorecard import scorecard_table

    exp = load_experiment(args.experiment, parse_vars(args.var))
    run_dir = new_run_dir(exp.name, args.out)
    _log_to_file(run_dir / LOG_FILE)
    log.info("run %s: %s -> %s", exp.name, exp.title, run_dir)
    result = execute(exp, run_dir)
    print(scorecard_table(result.scorecard))
    print(f"results: {run_dir}")
    if result.error is not None:
        print(f"gpuchaos: error: {result.error}", file=sys.stderr)
    return result.exit_code


def cmd_score(args: argparse.Namespace) -> int:
    from harness.scoring.rundir import score_run_dir
    from harness.scoring.scorecard import scorecard_table

    card = score_run_dir(Path(args.run_dir))
    print(scorecard_table(card))
    return int(card["exit_code"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpuchaos",
        description="Chaos and load testing for GPU inference workloads.",
    )
    p.add_argument("--version", action="version", version=f"gpuchaos {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug output on the terminal")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an experiment and score it")
    run.add_argument(
        "experiment", help="experiment file (YAML), e.g. experiments/gpu-node-loss.yaml"
    )
    run.add_argument("--out", help="run folder (default: results/<UTC time>-<experiment>)")
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a configuration value of the experiment (repeatable)",
    )
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check an experiment file without running it")
    val.add_argument("experiment")
    val.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    val.set_defaults(func=cmd_validate)

    score = sub.add_parser("score", help="re-score a run folder offline")
    score.add_argument("run_dir")
    score.set_defaults(func=cmd_score)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"gpuchaos: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gpuchaos: error: interrupted", file=sys.stderr)
        return 2
