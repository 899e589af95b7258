"""Read a plan and load every experiment in it, on the plan's deployment, before anything
is deployed.

Each experiment is loaded through :func:`harness.experiment.load_experiment` (the one way
in) with its ``workload`` and ``platform`` (or ``endpoint``) replaced by the plan's, so every
check (faults against the platform kind, targets the platform declares, cores of this
machine) runs against the deployment it will really meet. Any problem is one ConfigError
naming the plan file and the entry: ``plan.yaml: experiments[2] (replica-hang): ...``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.config import EXTENSION_NAME
from harness.errors import ConfigError
from harness.experiment import Experiment, load_experiment
from harness.experiment.document import read_document
from harness.experiment.fields import choices
from harness.gameday.plan import GamedayPlan, PlanEntry, read_plan

#: Where catalog names are looked up first (as ``gpuchaos list`` does).
CATALOG = Path("experiments")
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Entry:
    """One experiment of the plan, loaded and checked."""

    index: int  # its place in the plan file (experiments[index])
    name: str  # the experiment's name (file stem): run folders are NN-<name>
    path: Path  # the experiment file
    vars: dict[str, Any]
    experiment: Experiment
    shared: bool  # runs on the plan's deployment (False: own_platform)


@dataclass(frozen=True)
class LoadedPlan:
    """A plan whose experiments all loaded: what ``gpuchaos gameday`` runs, in order."""

    path: Path
    plan: GamedayPlan
    sha256: str
    entries: list[Entry]  # in run order (shuffled when asked)
    seed: int | None  # the shuffle's seed; None: the plan's order

    @property
    def name(self) -> str:
        return self.path.stem


def load_plan(
    path: str | Path, seed: int | None = None, allow_modules: list[str] | tuple[str, ...] = ()
) -> LoadedPlan:
    """Read the plan at ``path`` and load every experiment it names; ``seed`` (``--seed``)
    shuffles the order, over the plan's own ``shuffle``. Raises ConfigError."""
    p = Path(path)
    plan, doc = read_plan(p)
    allowed = [*plan.allow_modules, *allow_modules]
    entries = [_load_entry(p, i, e, doc, allowed) for i, e in enumerate(plan.experiments)]
    if seed is None and plan.shuffle is not None:
        seed = plan.shuffle.seed
    if seed is not None:
        random.Random(seed).shuffle(entries)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    return LoadedPlan(p, plan, digest, entries, seed)


def _where(index: int, entry: PlanEntry) -> str:
    return f"experiments[{index}] ({Path(entry.experiment).stem})"


def resolve_experiment(plan_path: Path, index: int, entry: PlanEntry) -> Path:
    """The file an entry names: a catalog name, or a path relative to the plan file."""
    ref = entry.experiment
    if "/" in ref or ref.endswith(_SUFFIXES):
        found = (plan_path.parent / ref).resolve()
        if found.is_file():
            return found
        raise ConfigError(str(plan_path), _where(index, entry), f"no experiment file {found}")
    folders = [CATALOG, plan_path.parent, plan_path.parent.parent]
    for folder in folders:
        for suffix in _SUFFIXES:
            candidate = folder / f"{ref}{suffix}"
            if candidate.is_file():
                return candidate
    known = {f.stem for folder in folders if folder.is_dir() for f in folder.glob("*.yaml")}
    raise ConfigError(
        str(plan_path),
        _where(index, entry),
        f"unknown experiment {ref!r} (looked in {', '.join(map(str, folders))}; "
        f"{choices(ref, known)})",
    )


def _load_entry(
    plan_path: Path, index: int, entry: PlanEntry, plan_doc: dict[str, Any], allowed: list[str]
) -> Entry:
    where = _where(index, entry)
    exp_path = resolve_experiment(plan_path, index, entry)
    try:
        if entry.own_platform:
            exp = load_experiment(exp_path, dict(entry.vars), allowed)
        else:
            exp = _load_on_plan_platform(exp_path, entry, plan_doc, allowed)
    except ConfigError as exc:
        raise ConfigError(str(plan_path), where, _inner(exc)) from None
    if exp.spec.tenancy is not None:
        raise ConfigError(
            str(plan_path),
            where,
            f"{exp_path.name} has tenancy: a game day shares one workload; run it alone "
            "with gpuchaos run",
        )
    return Entry(index, exp.name, exp_path, dict(entry.vars), exp, not entry.own_platform)


def _inner(exc: ConfigError) -> str:
    """An experiment's error, said inside a plan entry: an unknown --var is the entry's
    ``vars``."""
    if exc.source == "--var":
        return f"vars.{exc.field}: {exc.problem}"
    return str(exc)


def _load_on_plan_platform(
    exp_path: Path, entry: PlanEntry, plan_doc: dict[str, Any], allowed: list[str]
) -> Experiment:
    """Load the experiment with the plan's workload and platform (or endpoint) in place of
    its own. The loader reads files, so the substituted document is written to a file of
    the same name in a temporary folder; messages and the result name the real file."""
    doc = read_document(exp_path)
    exts = doc.get("extensions")
    blocks = [
        b for b in (exts if isinstance(exts, list) else []) if isinstance(b, dict)
        and b.get("name") == EXTENSION_NAME
    ]  # fmt: skip
    if len(blocks) != 1:  # not ours to say: the loader names the problem
        return load_experiment(exp_path, dict(entry.vars), allowed)
    block = blocks[0]
    for key in ("workload", "platform", "endpoint"):
        block.pop(key, None)
        if key in plan_doc:
            block[key] = copy.deepcopy(plan_doc[key])
    with tempfile.TemporaryDirectory(prefix="gpuchaos-gameday-") as tmp:
        stand_in = Path(tmp) / exp_path.name
        stand_in.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        try:
            exp = load_experiment(stand_in, dict(entry.vars), allowed)
        except ConfigError as exc:
            source = str(exp_path) if exc.source == str(stand_in) else exc.source
            problem = exc.problem.replace(str(stand_in), str(exp_path))
            raise ConfigError(source, exc.field, problem) from None
    return dataclasses.replace(exp, path=exp_path)


def run_seconds(exp: Experiment) -> float:
    """How long an experiment's run lasts: warm-up and load (its method runs within)."""
    from harness.load.shapes import duration

    return float(exp.spec.warmup_s) + float(duration(exp.spec.load.shape))
