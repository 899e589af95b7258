"""``gpuchaos compare --baseline last-pass RUN``: the baseline picked from the history.

The last passing run of the same experiment (same name) that started before ``RUN``,
preferring one whose ``experiment.yaml`` has the same sha256 (the same experiment, not only
the same name): a gate compares like with like when it can, and says when it could not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import ConfigError
from harness.history import history_root, history_table, run_row
from harness.rundir import SCORECARD_FILE

log = logging.getLogger(__name__)

#: The values ``--baseline`` takes.
BASELINE_CHOICES = ("last-pass",)


@dataclass(frozen=True)
class Pick:
    """The baseline run picked, and why (one line for the terminal)."""

    run_dir: Path
    reason: str


def last_pass(run: Path, roots: list[Path] | None = None) -> Pick:
    """The last passing run of ``run``'s experiment in the history of ``roots`` (default: the
    folder ``run`` lives in, see :func:`harness.history.history_root`). Raises
    :class:`ConfigError` when ``run`` is not a scored run folder or nothing passed before it."""
    run_dir = run.parent if run.name == SCORECARD_FILE else run
    me = run_row(run_dir) if run_dir.is_dir() else None
    if me is None:
        raise ConfigError(str(run), "", "not a scored run folder (see gpuchaos score)")
    search = roots or [history_root(run_dir)]
    table = history_table(search, experiment=me["experiment"])
    here = str(run_dir.resolve())
    if not table.empty:
        others = table["run_dir"].map(lambda d: str(Path(d).resolve()) != here)
        table = table[others & (table["verdict"] == "pass") & (table["time"] < me["time"])]
    where = ", ".join(str(r) for r in search)
    if table.empty:
        raise ConfigError(
            str(run),
            "--baseline last-pass",
            f"no passing run of {me['experiment']} before it in {where}",
        )
    same = table[table["experiment_sha256"] == me["experiment_sha256"]]
    if not same.empty:
        chosen = same.iloc[-1]
        how = "same experiment file"
    else:
        chosen = table.iloc[-1]
        how = (
            f"experiment file differs: sha256 {str(chosen['experiment_sha256'])[:12]} "
            f"vs {str(me['experiment_sha256'])[:12]}; no passing run of this one"
        )
    when = pd.Timestamp(chosen["time"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    reason = (
        f"baseline: {chosen['run_dir']} (last passing run of {me['experiment']} in {where}, "
        f"{when}, {how})"
    )
    log.info("%s", reason)
    return Pick(Path(str(chosen["run_dir"])), reason)


def resolve_compare(
    pick: str | None, baseline: str | None, run: str | None, history: list[str] | None
) -> tuple[str, str]:
    """The (baseline, run) that ``gpuchaos compare`` compares. With ``--baseline last-pass``
    exactly one positional is given (the run, which argparse leaves in ``baseline``) and the
    baseline comes from the history; without it both positionals are required."""
    if pick is None:
        if baseline is None or run is None:
            raise ConfigError("compare", "", "expected BASELINE RUN, or --baseline last-pass RUN")
        if history:
            raise ConfigError("compare", "--history", "only with --baseline last-pass")
        return baseline, run
    if pick not in BASELINE_CHOICES:
        raise ConfigError("compare", "--baseline", f"expected one of {', '.join(BASELINE_CHOICES)}")
    given = [p for p in (baseline, run) if p is not None]
    if len(given) != 1:
        raise ConfigError("compare", "", "with --baseline last-pass, give only RUN")
    target = Path(given[0])
    chosen = last_pass(target, [Path(h) for h in history] if history else None)
    print(chosen.reason)
    return str(chosen.run_dir), str(target)
