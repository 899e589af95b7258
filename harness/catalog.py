"""The experiment catalog: what ``gpuchaos list`` shows.

The faults column comes from the fault registry (through the Chaos Toolkit adapter), so an
experiment on any platform lists the faults its method injects, Kubernetes ones included,
with how each acts where the fault says (``mechanism``: a Kubernetes fault in a pod acts by
exec or through the workload's fault hook).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.chaos.adapter import lookup
from harness.errors import ConfigError
from harness.experiment import load_experiment


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    title: str
    faults: list[str]  # fault actions of the method, in order
    duration_s: float | None  # length of the load
    problem: str | None = None  # set when the file does not validate
    #: fault -> how it acts, where the fault says (a Kubernetes fault: exec or the hook)
    via: dict[str, str] = field(default_factory=dict)
    #: a tenancy experiment's sharing mode (as resolved: its default), else None
    sharing: str | None = None


def _faults(document: dict[str, Any]) -> list[str]:
    out = []
    for activity in document.get("method") or []:
        found = lookup(activity)
        if found is not None and not found.reverts:
            out.append(found.fault.name)
    return out


def _mechanisms(document: dict[str, Any]) -> dict[str, str]:
    out = {}
    for activity in document.get("method") or []:
        found = lookup(activity)
        how = getattr(found.fault, "mechanism", "") if found is not None else ""
        if found is not None and how:
            out[found.fault.name] = str(how)
    return out


def catalog(folder: Path) -> list[CatalogEntry]:
    """Every ``*.yaml`` experiment of ``folder``, validated, sorted by name."""
    entries = []
    try:
        is_dir = Path(folder).is_dir()
    except OSError as exc:  # a name too long, a loop of links
        raise ConfigError(str(folder)[:100], "", f"cannot read it: {exc.strerror}") from None
    if not is_dir:
        raise ConfigError(str(folder)[:100], "", "not a folder of experiments")
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            exp = load_experiment(path)
        except ConfigError as exc:
            entries.append(CatalogEntry(path.stem, "", [], None, str(exc)))
            continue
        duration = getattr(exp.spec.load.shape, "duration_s", None)
        entries.append(
            CatalogEntry(
                exp.name,
                exp.title,
                _faults(exp.document),
                float(duration) if duration is not None else None,
                via=_mechanisms(exp.document),
                sharing=exp.spec.tenancy.sharing if exp.spec.tenancy is not None else None,
            )
        )
    return entries


def sharing_block(entries: list[CatalogEntry]) -> str | None:
    """Below the table when it lists a tenancy experiment: each sharing mode, real or a
    stand-in on this machine, and which experiments run under which by default."""
    used = {e.name: e.sharing for e in entries if e.sharing is not None and not e.problem}
    if not used:
        return None
    from harness.platforms.local.sharing_modes import modes_block

    return modes_block(used)


def catalog_table(entries: list[CatalogEntry]) -> str:
    rows = [("name", "title", "faults", "duration")]
    for e in entries:
        if e.problem:
            rows.append((e.name, f"INVALID: {e.problem}", "", ""))
            continue
        faults = ", ".join(f"{f} [{e.via[f]}]" if f in e.via else f for f in e.faults)
        faults = faults or "none (baseline)"
        duration = f"{e.duration_s:g} s" if e.duration_s is not None else "-"
        rows.append((e.name, e.title, faults, duration))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    )
