"""The experiment catalog (``experiments/``), its game-day plans and drill packs, from the
files themselves: an experiment added to the catalog is listed with what it teaches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refgen import GENERATED_NOTE, NONE, ROOT, cell


def _objectives(slos: Any) -> str:
    data = slos.model_dump(exclude_defaults=True, exclude_none=True) if slos is not None else {}
    shown = [f"`{k}` {v}" for k, v in data.items() if not isinstance(v, dict | list)]
    return ", ".join(shown) or NONE


def experiment_rows(folder: Path) -> list[str]:
    from harness.catalog import catalog
    from harness.experiment import load_experiment

    rows = [
        "| experiment | title | faults | load | SLOs | what it teaches |",
        "|---|---|---|---|---|---|",
    ]
    for entry in catalog(folder):
        if entry.problem is not None:
            rows.append(f"| `{entry.name}` | {cell(entry.problem)} | | | | |")
            continue
        exp = load_experiment(folder / f"{entry.name}.yaml")
        description = str(exp.document.get("description") or "")
        duration = f"{entry.duration_s:g} s" if entry.duration_s is not None else NONE
        faults = ", ".join(f"`{f}`" for f in entry.faults) or "none (baseline)"
        rows.append(
            f"| `{entry.name}` | {cell(entry.title)} | {faults} | {duration} "
            f"| {_objectives(exp.spec.slos)} | {cell(description)} |"
        )
    return rows


def _files(folder: Path) -> list[tuple[str, str]]:
    import yaml

    out = []
    for path in sorted(folder.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        title = doc.get("title", "") if isinstance(doc, dict) else ""
        out.append((str(path.relative_to(ROOT)), str(title)))
    return out


def catalog_page() -> str:
    folder = ROOT / "experiments"
    out = [
        "# The experiment catalog\n",
        GENERATED_NOTE,
        "Every experiment of `experiments/`, loaded and validated as `gpuchaos list` does "
        "(`harness/catalog.py`): its faults (from the fault registry), the length of its "
        "load, its SLO objectives and its description, which says what it teaches. "
        "Run one with `gpuchaos run experiments/NAME.yaml`; the "
        "[fault catalog](../faults.md) explains the faults.\n",
        *experiment_rows(folder),
        "",
        "## Game-day plans\n",
        "Run with `gpuchaos gameday PLAN` ([Game days](../guides/game-days.md)).\n",
        "| plan | title |",
        "|---|---|",
        *[f"| `{p}` | {cell(t)} |" for p, t in _files(folder / "gamedays")],
        "",
        "## Drill packs\n",
        "Run with `gpuchaos drill [POOL]` ([Drills](../guides/drills.md)).\n",
        "| pack | title |",
        "|---|---|",
        *[f"| `{p}` | {cell(t)} |" for p, t in _files(folder / "drills")],
        "",
    ]
    return "\n".join(out)
