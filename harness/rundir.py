"""The run folder: ``results/<UTC time>-<experiment>/`` and the names of what goes in it."""

from __future__ import annotations

import time
from pathlib import Path

from harness.errors import ConfigError

EXPERIMENT_FILE = "experiment.yaml"
JOURNAL_FILE = "journal.json"
SCORECARD_FILE = "scorecard.json"
SLIS_FILE = "slis.csv"
LOG_FILE = "harness.log"
TELEMETRY_FILE = "telemetry.csv"


def new_run_dir(experiment_name: str, out: str | Path | None, root: Path = Path("results")) -> Path:
    """Create the run folder: ``out`` when given (must be absent or empty), else a fresh
    ``root/<UTC time>-<name>``."""
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError("--out", str(path), "expected a new or empty folder")
    else:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = root / f"{stamp}-{experiment_name}"
        n = 1
        while path.exists():
            n += 1
            path = root / f"{stamp}-{experiment_name}-{n}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "logs").mkdir(exist_ok=True)
    return path.resolve()
