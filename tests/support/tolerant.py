"""A catalog experiment with latency objectives that any answered request meets, for tests
whose point is a fault (that it ran, was interrupted, was reverted), not the SLOs.

The steady-state hypothesis runs before the method; when it misses (a busy machine easily
misses the catalog's 250 ms p50 under load), chaoslib skips the method and no fault is
injected at all, and a test waiting for the fault waits out the whole run and fails. The
copy keeps everything else of the catalog file (workload, platform, load, method, the other
SLOs) and its name, so run folders and timelines read the same.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.config import EXTENSION_NAME

ROOT = Path(__file__).resolve().parents[2]


def tolerant_copy(folder: Path, name: str) -> Path:
    """``folder/<name>.yaml``: ``experiments/<name>.yaml`` with every ``*_ms`` objective set
    to the load's request time-out."""
    doc = yaml.safe_load((ROOT / "experiments" / f"{name}.yaml").read_text(encoding="utf-8"))
    ext = next(e for e in doc["extensions"] if e.get("name") == EXTENSION_NAME)
    timeout_ms = float(ext["load"]["request_timeout_s"]) * 1000.0
    ext["slos"] = {k: timeout_ms if k.endswith("_ms") else v for k, v in ext["slos"].items()}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
