"""Every command and flag, from the CLI's argparse tree (``harness.cli.build_parser``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from refgen import GENERATED_NOTE, NONE, cell


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_of(parser: argparse.ArgumentParser, name: str) -> str:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name or choice.metavar == name:
                    return choice.help or ""
    return ""


def walk_commands(
    parser: argparse.ArgumentParser, prefix: str = "gpuchaos"
) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """(full command, its parser, its one-line help) for every command and subcommand."""
    for name, sub in _subparsers(parser).items():
        command = f"{prefix} {name}"
        yield command, sub, _help_of(parser, name)
        yield from walk_commands(sub, command)


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.option_strings:
            names = ", ".join(f"`{o}`" for o in action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or (action.dest.upper())
                if isinstance(metavar, tuple):
                    metavar = " ".join(metavar)
                names += f" `{metavar}`"
        else:
            metavar = action.metavar or action.dest
            names = f"`{metavar}`" + (" (optional)" if action.nargs in ("?", "*") else "")
        default = action.default
        if default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0:
            default_cell = NONE
        else:
            default_cell = f"`{default}`"
        appends = isinstance(action, argparse._AppendAction)
        repeat = " (repeatable)" if appends and "repeatable" not in (action.help or "") else ""
        choices = (
            f" One of {', '.join(f'`{c}`' for c in action.choices)}." if action.choices else ""
        )
        rows.append(
            f"| {names} | {default_cell} | {cell((action.help or '') + repeat + choices)} |"
        )
    return rows


def cli_page() -> str:
    from harness.cli import build_parser

    parser = build_parser()
    out = [
        "# Command line\n",
        GENERATED_NOTE,
        "Every command and flag of `gpuchaos` (also `python -m harness`), from its argument "
        "parser (`harness/cli.py` and the `COMMAND_MODULES` it registers). Exit codes: **0** "
        "all SLOs met, **1** an SLO missed (or, for `doctor`, a problem on the machine), "
        "**2** anything else, always as one line starting `gpuchaos: error:`. See "
        "[Troubleshooting](../troubleshooting.md) for those lines.\n",
        "## gpuchaos\n",
        "| argument | default | what it does |",
        "|---|---|---|",
        *_argument_rows(parser),
        "",
    ]
    for command, sub, summary in walk_commands(parser):
        out.append(f"## {command}\n")
        if summary:
            out.append(f"{summary[0].upper()}{summary[1:]}.\n")
        usage = " ".join(sub.format_usage().split())
        usage = usage.removeprefix("usage: ")
        out.append(f"```text\n{usage}\n```\n")
        if sub.description:
            out.append(" ".join(sub.description.split()) + "\n")
        rows = _argument_rows(sub)
        if rows:
            out += ["| argument | default | what it does |", "|---|---|---|", *rows, ""]
    return "\n".join(out)
