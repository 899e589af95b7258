"""The live page's line per tenant of a tenancy run: requests, failed, p99 latency so far.

Why: in a tenancy run each tenant's records go to ``tenants/<name>/requests.csv`` (the run has
no ``requests.csv`` of its own), and "is the neighbour's fault hurting us?" is read off the
other tenant's failures as they happen. Read from the files as the run writes them, by the
scorer's parser; a half-written last line waits for the next poll.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from harness.rundir import REQUESTS_FILE
from harness.scoring.slis import failed_mask, parse_requests
from harness.scoring.tenancy_view import TENANTS_DIR

log = logging.getLogger(__name__)


def tenant_rows(run_dir: Path) -> list[dict[str, Any]]:
    """One row per tenant folder with a request log: ``tenant``, ``requests``, ``errors``,
    ``p99_ms`` (of the latency of every request so far; null before the first); none when the
    run is not a tenancy run."""
    root = Path(run_dir) / TENANTS_DIR
    if not root.is_dir():
        return []
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        path = folder / REQUESTS_FILE
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
            complete = data[: data.rfind(b"\n") + 1]  # the last line may be half written
            if b"\n" not in complete:
                continue  # not even a header yet
            req = parse_requests(io.BytesIO(complete), path)
        except Exception:  # a file being written or replaced: the next poll reads it
            log.debug("%s unreadable now", path, exc_info=True)
            continue
        latency = req["latency_ms"].to_numpy(dtype="float64")
        latency = latency[np.isfinite(latency)]
        rows.append(
            {
                "tenant": folder.name,
                "requests": len(req),
                "errors": int(failed_mask(req).sum()) if len(req) else 0,
                "p99_ms": round(float(np.percentile(latency, 99)), 1) if len(latency) else None,
            }
        )
    return rows
