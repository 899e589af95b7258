"""The files the runner and the Locust processes share: the load config, and the load's t0.

The runner writes ``load.json`` (the load spec, where records go, and either a fixed ``t0``
or the file where the Locust process that owns the shape writes the ``t0`` it picks once it
is ready). Read inside the Locust process, so it imports nothing heavier than pydantic.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.config import LoadSpec

#: Environment variable naming the JSON config file for the locustfile.
CONFIG_ENV = "GPUCHAOS_LOAD_CONFIG"


@dataclass(frozen=True)
class LoadConfig:
    load: LoadSpec
    records_path: Path
    #: unix seconds at which the shape starts (offset 0); ``None``: the Locust process that
    #: owns the shape picks it when ready and writes it to ``t0_path``
    t0: float | None
    t0_path: Path | None = None


def _write_json(path: Path, doc: object) -> None:
    """``doc`` as JSON at ``path``, atomically (a reader sees the whole file or none)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_load_config(
    path: Path,
    load: LoadSpec,
    records_path: Path,
    t0: float | None,
    t0_path: Path | None = None,
) -> None:
    """``load.json``: a fixed ``t0``, or none and the file the Locust process writes it to."""
    if t0 is None and t0_path is None:
        raise ValueError("a load config needs t0 or the file where Locust writes it")
    doc = {
        "load": load.model_dump(mode="json"),
        "records_path": str(records_path),
        "t0": t0,
        "t0_path": None if t0_path is None else str(t0_path),
    }
    _write_json(path, doc)


def read_load_config(path: str | os.PathLike[str]) -> LoadConfig:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    t0, t0_path = doc.get("t0"), doc.get("t0_path")
    return LoadConfig(
        load=LoadSpec.model_validate(doc["load"]),
        records_path=Path(doc["records_path"]),
        t0=None if t0 is None else float(t0),
        t0_path=None if t0_path is None else Path(t0_path),
    )


def write_t0(path: Path, t0: float) -> None:
    """The load's t0 (unix seconds), as the Locust process that owns the shape picked it."""
    _write_json(path, {"t0": t0})


def read_t0(path: Path) -> float | None:
    """The t0 written by :func:`write_t0`; ``None`` while there is none."""
    try:
        with open(path, encoding="utf-8") as fh:
            return float(json.load(fh)["t0"])
    except FileNotFoundError:
        return None
