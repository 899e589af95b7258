"""The file the runner hands to the Locust process: the load spec, where records go, t0.

Read inside the Locust process, so it imports nothing heavier than pydantic.
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
    t0: float  # unix seconds at which the shape starts (offset 0)


def write_load_config(path: Path, load: LoadSpec, records_path: Path, t0: float) -> None:
    doc = {"load": load.model_dump(mode="json"), "records_path": str(records_path), "t0": t0}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_load_config(path: str | os.PathLike[str]) -> LoadConfig:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    return LoadConfig(
        load=LoadSpec.model_validate(doc["load"]),
        records_path=Path(doc["records_path"]),
        t0=float(doc["t0"]),
    )
