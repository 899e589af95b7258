"""The ``gpuchaos`` command line. The only place that configures logging.

Exit codes: 0 all SLOs met, 1 an SLO missed, 2 the harness could not run the experiment
(bad input, workload never Ready, fault had no effect, interrupted run).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from harness import __version__
from harness.cli_support import (
    _configure_logging,
    _install,
    _log_to_file,
    allow_module_option,
)
from harness.errors import ConfigError, HarnessError

if TYPE_CHECKING:
    from harness.experiment import Experiment
    from harness.live import LiveServer

log = logging.getLogger("harness.cli")


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.experiment import load_experiment, parse_vars

    exp = load_experiment(args.experiment, parse_vars(args.var), args.allow_module)
    platform = exp.spec.platform
    if exp.spec.endpoint is not None:
        where = f"endpoint: {exp.spec.endpoint.url}"
    elif platform is not None and platform.kind == "kubernetes":
        deploy = "existing pods" if not platform.deploy else f"deploy {platform.name}"
        where = f"kubernetes {platform.namespace}: {deploy}"
    elif exp.spec.tenancy is not None:
        t, pool = exp.spec.tenancy, getattr(platform, "nodes", None) or []
        tenants = ", ".join(f"{x.name}({x.contract.replicas})" for x in t.tenants)
        where = f"{t.sharing} pool {', '.join(n.name for n in pool)}; tenants {tenants}"
    else:
        local_nodes = getattr(platform, "nodes", None) or []
        where = "nodes: " + ", ".join(f"{n.name}({n.replicas}x{n.device})" for n in local_nodes)
    print(f"{exp.path}: valid: {exp.title} [{where}]")
    print(f"{exp.path}: imports: {', '.join(exp.modules) or 'nothing'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness import ci
    from harness.experiment import load_experiment, parse_vars
    from harness.rundir import RunDir, new_run_dir
    from harness.runner import execute
    from harness.scoring.table import scorecard_table

    try:
        exp = load_experiment(args.experiment, parse_vars(args.var), args.allow_module)
    except HarnessError as exc:
        ci.report_error(exc, args.experiment)  # an annotation on GitHub Actions
        raise
    _preflight(exp, quiet=args.dry_run)  # the dry run's plan has the same lines
    if args.dry_run:
        from harness.planner import plan

        for line in plan(exp, args.kube_context):
            print(f"dry run: {line}")
        return 0
    address = _serve_address(args)
    run_dir = new_run_dir(exp.name, args.out)
    live = _live_server(address, args.serve_remote, run_dir, exp.title)
    _log_to_file(RunDir(run_dir).harness_log)
    try:
        log.info("run %s: %s -> %s", exp.name, exp.title, run_dir)
        panel = False if args.ci else None  # --ci: plain progress lines, no live panel
        result = execute(exp, run_dir, kube_context=args.kube_context, live_panel=panel, live=live)
    finally:
        _install("run file", None)  # this run's harness.log is complete
        if live is not None:  # the runner stopped it; this closes a socket never served
            live.stop()
    print(scorecard_table(result.scorecard))
    print(f"results: {run_dir}")
    if args.pushgateway:
        _push(args.pushgateway, result.scorecard, exp.name)
    if result.error is not None:
        log_path = RunDir(run_dir).harness_log
        print(f"gpuchaos: error: {result.error} (log: {log_path})", file=sys.stderr)
    error = None if result.error is None else str(result.error)
    ci.report_run(  # GitHub Actions: step summary and annotations
        result.scorecard,
        exp.title,
        run_dir,
        result.exit_code,
        name=exp.name,
        error=error,
        experiment_file=args.experiment,
    )
    return result.exit_code


def _preflight(exp: Experiment, quiet: bool) -> None:
    """Print the spare-capacity preflight of the experiment's node-loss faults; with
    ``preflight: strict``, refuse (exit 2, before anything is deployed) a fault whose
    replicas cannot find room within the recovery objective."""
    from harness.planner import preflight_checks

    checks = preflight_checks(exp)
    if not quiet:
        for check in checks:
            print(f"preflight: {check.line()}")
    late = [c for c in checks if c.in_time is False]
    if late and exp.spec.preflight == "strict":
        raise ConfigError(
            str(exp.path), "preflight", f"strict, and {late[0].line()} (nothing was deployed)"
        )


def _serve_address(args: argparse.Namespace) -> tuple[str, int] | None:
    """--serve [HOST:]PORT as (host, port), checked before anything is created: a bad
    address, or one off loopback without --serve-remote, is exit 2 (warned about with it)."""
    if args.serve is None:
        if args.serve_remote:
            raise ConfigError("--serve-remote", "", "only with --serve HOST:PORT")
        return None
    from harness.live import LiveServer, is_loopback, parse_bind

    host, port = parse_bind(args.serve)
    if not is_loopback(host):
        LiveServer.check_host(host, args.serve_remote)
        log.warning(
            "the live page will listen on %s, reachable from other machines: anyone who "
            "gets its URL (with the token) can see the run and act on it",
            args.serve,
        )
    return host, port


def _live_server(
    address: tuple[str, int] | None, remote: bool, run_dir: Path, title: str
) -> LiveServer | None:
    """The live page's server, bound now: a port in use is exit 2 before anything is
    deployed, and the run folder just made is removed again."""
    if address is None:
        return None
    from harness.live import LiveServer

    try:
        return LiveServer(run_dir, title, address[0], address[1], allow_remote=remote)
    except HarnessError:
        for empty in (run_dir / "logs", run_dir):
            if empty.is_dir() and not any(empty.iterdir()):
                empty.rmdir()
        raise


def _push(url: str, scorecard: dict[str, object], name: str) -> None:
    """--pushgateway: the run's figures to a Pushgateway; a failed push is a warning, never
    a different verdict or exit code."""
    from harness.report.pushgateway import push_scorecard

    try:
        push_scorecard(url, dict(scorecard), name)
    except HarnessError as exc:
        log.warning("%s (the verdict stands)", exc)


def cmd_score(args: argparse.Namespace) -> int:
    from harness.scoring.rundir import score_run_dir
    from harness.scoring.table import scorecard_table

    card = score_run_dir(Path(args.run_dir))
    print(scorecard_table(card))
    return int(card["exit_code"])


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.ci import run_compare  # harness.compare's, plus annotations on GitHub Actions
    from harness.history.baseline import resolve_compare

    args.baseline, args.run = resolve_compare(
        args.baseline_pick, args.baseline, args.run, args.history
    )

    return run_compare(args.baseline, args.run, args.max_regression)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.history import GAMEDAY_FILE
    from harness.report import write_reports

    folder = Path(args.run_dir)
    if (folder / GAMEDAY_FILE).is_file():  # a game-day folder: its combined reports
        from harness.gameday.report import write_gameday_reports

        for path in write_gameday_reports(folder):
            print(path)
        return 0
    for path in write_reports(folder):
        print(path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from harness.catalog import catalog, catalog_table, sharing_block

    entries = catalog(Path(args.folder))
    if not entries:
        raise ConfigError(args.folder, "", "no experiments (*.yaml) in this folder")
    print(catalog_table(entries))
    block = sharing_block(entries)
    if block:
        print(f"\n{block}")
    bad = sum(1 for e in entries if e.problem)
    if bad:
        print(
            f"gpuchaos: error: {args.folder}: {bad} invalid experiment(s), see the table",
            file=sys.stderr,
        )
        return 2
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from harness.cleanup import cleanup_report

    for line in cleanup_report(include_live=args.all):
        print(line)
    return 0


#: Modules that bring a command of their own: each has ``add_command(subparsers)``, which
#: adds its parser with ``set_defaults(func=...)``. Why: a workflow (game days, drills, the
#: CI gate's doctor) keeps its command line beside its code, and this file stays the one
#: place that configures logging and turns errors into exit codes. Such a module imports
#: its heavy parts inside its command function, so ``gpuchaos --help`` stays quick.
COMMAND_MODULES: tuple[str, ...] = (
    "harness.gameday.command",
    "harness.doctor",
    "harness.history.command",
    "harness.drill.command",
    "harness.alerts.command",
    "harness.tenant_manifests",
    "harness.report.tenancy_command",
)


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"gpuchaos: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="gpuchaos",
        description="Chaos and load testing for GPU inference workloads.",
    )
    p.add_argument("--version", action="version", version=f"gpuchaos {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug output on the terminal")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run an experiment and score it")
    run.add_argument(
        "experiment", help="experiment file (YAML), e.g. experiments/gpu-node-loss.yaml"
    )
    run.add_argument("--out", help="run folder (default: results/<UTC time>-<experiment>)")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="check and print what the run would do; no mutating call, no load, no faults",
    )
    run.add_argument(
        "--kube-context",
        metavar="NAME",
        help="kubernetes: the kube context the run must use (overrides platform.context)",
    )
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a configuration value of the experiment (repeatable)",
    )
    run.add_argument(
        "--ci",
        action="store_true",
        help="plain, log-friendly output (no live panel, no colour) even on a terminal",
    )
    run.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the run's figures to this Prometheus Pushgateway at the end "
        "(job gpuchaos, plan none); a failed push is a warning",
    )
    run.add_argument(
        "--serve",
        nargs="?",
        const="127.0.0.1:0",
        metavar="[HOST:]PORT",
        help="serve a live page of the run (default 127.0.0.1 and a free port; the URL, "
        "with its token, is printed once the workload is up)",
    )
    run.add_argument(
        "--serve-remote",
        action="store_true",
        help="allow --serve to bind an address other than loopback (prints a warning)",
    )
    allow_module_option(run)
    run.set_defaults(func=cmd_run)

    val = sub.add_parser(
        "validate",
        help="check an experiment file without running it; print the modules it imports",
    )
    val.add_argument("experiment")
    val.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    allow_module_option(val)
    val.set_defaults(func=cmd_validate)

    score = sub.add_parser("score", help="re-score a run folder offline")
    score.add_argument("run_dir")
    score.set_defaults(func=cmd_score)

    comp = sub.add_parser(
        "compare", help="compare a run with a baseline run; exit 1 on a regression"
    )
    comp.add_argument(
        "baseline",
        nargs="?",
        help="baseline run folder (or its scorecard.json); left out with --baseline last-pass",
    )
    comp.add_argument("run", nargs="?", help="run folder to check (or its scorecard.json)")
    comp.add_argument(
        "--baseline",
        dest="baseline_pick",
        choices=["last-pass"],
        help="last-pass: the baseline is the last passing run of RUN's experiment in the "
        "history (same experiment file preferred); give only RUN",
    )
    comp.add_argument(
        "--history",
        action="append",
        metavar="FOLDER",
        help="with --baseline: where to look (default: the folder RUN lives in; repeatable)",
    )
    comp.add_argument(
        "--max-regression",
        action="append",
        default=[],
        metavar="PCT|NAME=PCT",
        help="allowed regression in percent: for every gated figure (default 20), or for "
        "one figure, e.g. time_to_recover_s=20 (repeatable)",
    )
    comp.set_defaults(func=cmd_compare)

    report = sub.add_parser(
        "report",
        help="write report.html, junit.xml and summary.md of a run folder (or gameday.html, "
        "junit.xml and summary.md of a game-day folder)",
    )
    report.add_argument("run_dir")
    report.set_defaults(func=cmd_report)

    lst = sub.add_parser("list", help="show the experiment catalog: name, title, faults, length")
    lst.add_argument("folder", nargs="?", default="experiments", help="default: experiments")
    lst.set_defaults(func=cmd_list)

    clean = sub.add_parser(
        "cleanup", help="revert the faults a dead run left behind (stopped replicas, limits, hogs)"
    )
    clean.add_argument(
        "--all", action="store_true", help="also revert faults of runs that are still going"
    )
    clean.set_defaults(func=cmd_cleanup)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(sub)
    return p


def _traceback_file(exc: BaseException) -> Path:
    """Where the last-resort handler keeps a traceback: the terminal gets one line."""
    path = Path(tempfile.gettempdir()) / f"gpuchaos-error-{os.getpid()}.log"
    with path.open("w", encoding="utf-8") as f:
        traceback.print_exception(exc, file=f)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 all SLOs met, 1 an SLO missed, 2 anything else (bad
    input, the harness could not run, an incomplete run, a bug): always one line on
    stderr, never a traceback, so a CI gate can tell "the service missed" from "the
    harness failed"."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0), usage errors (2, one line printed)
        return int(exc.code or 0)
    _configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"gpuchaos: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gpuchaos: error: interrupted", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system said no (a path too long, a full disk)
        name = str(exc.filename)[:100] + ": " if exc.filename else ""
        print(f"gpuchaos: error: {name}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the last resort: a bug, still one line and exit 2
        log.debug("unexpected error", exc_info=True)
        where = _traceback_file(exc)
        text = f"{type(exc).__name__}: {exc}".splitlines()[0][:150] if str(exc) else ""
        print(
            f"gpuchaos: error: unexpected {text or type(exc).__name__} (a bug in gpuchaos; "
            f"traceback in {where})",
            file=sys.stderr,
        )
        return 2
