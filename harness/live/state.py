"""What the live page shows, built from the run folder and the platform's replicas.

The charts come from :func:`harness.report.charts.read_current` and
:func:`~harness.report.charts.chart_svgs`: the renderer of ``report.html``, over the files
written so far. Every timeline event, replica row and log line passes the view (a drill
hides its fault) before it is drawn or sent; the fault windows of the charts are drawn from
the filtered timeline, so a hidden fault leaves no shaded band either.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from harness.live.tenants import tenant_rows
from harness.platforms.base import ReplicaInfo
from harness.report.charts import chart_svgs, read_current
from harness.rundir import RunDir
from harness.scoring.slis import failed_mask

log = logging.getLogger(__name__)

#: A view: the row or event to show (maybe a changed copy), or None to hide it.
View = Callable[[dict[str, Any]], dict[str, Any] | None]

#: Lines of each replica's log in the state; the log endpoint gives up to LOG_MAX_LINES.
LOG_LINES = 20
LOG_MAX_LINES = 400
#: Timeline events in the state (the latest ones).
TIMELINE_EVENTS = 300
#: A replica id as the platforms make them ("node-a-0"): what the log endpoint accepts.
REPLICA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ReplicaSource(Protocol):
    """What the server needs of a platform: its replicas now (every platform has this)."""

    def replicas(self) -> Sequence[ReplicaInfo]: ...


def show_all(item: dict[str, Any]) -> dict[str, Any] | None:
    """The default view: everything."""
    return item


def replica_rows(source: ReplicaSource | None, view: View) -> list[dict[str, Any]]:
    """One row per replica after the view (``kind`` "replica"); none without a source."""
    if source is None:
        return []
    try:
        infos = list(source.replicas())
    except Exception:  # a platform being torn down
        log.debug("replicas unreadable", exc_info=True)
        return []
    rows = []
    for r in infos:
        row = view(
            {
                "kind": "replica",
                "id": r.id,
                "node": r.node or "(pending)",  # no node has room for it yet
                "state": r.state,
                "pid": r.pid,
                "restarts": r.restarts,
                "device": r.device,
            }
        )
        if row is not None:
            rows.append(row)
    return rows


def nodes_ready(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per node: replicas Ready and replicas placed there."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        node = out.setdefault(str(row.get("node")), {"ready": 0, "replicas": 0})
        node["replicas"] += 1
        node["ready"] += row.get("state") == "ready"
    return dict(sorted(out.items()))


def replica_log(run_dir: Path, replica_id: str, known: set[str]) -> Path | None:
    """The log of one of the run's replicas, or None: the id must be one the platform
    reported and a plain name, and the file must lie in the run's ``logs/`` folder (no
    other file of the machine is ever read through this)."""
    if replica_id not in known or not REPLICA_ID.match(replica_id):
        return None
    logs = RunDir(run_dir).logs.resolve()
    path = RunDir(run_dir).replica_log(replica_id).resolve()
    if path.parent != logs or not path.is_file():
        return None
    return path


def tail_lines(path: Path, n: int, max_bytes: int = 65536) -> list[str]:
    """The last ``n`` lines of a file (a partial first line dropped when cut)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = text.splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]
    return [line for line in lines if line.strip()][-n:]


def viewed_lines(replica_id: str, lines: list[str], view: View) -> list[str]:
    """Log lines after the view (``kind`` "log_line")."""
    out = []
    for line in lines:
        kept = view({"kind": "log_line", "replica": replica_id, "line": line})
        if kept is not None:
            out.append(str(kept.get("line", "")))
    return out


def _event_row(e: dict[str, Any], t0: float) -> dict[str, Any]:
    t = e.get("time")
    details = e.get("details") or {}
    text = json.dumps(details, default=str, separators=(", ", ": ")) if details else ""
    return {
        "t": round(float(t) - t0, 1) if isinstance(t, int | float) else None,
        "kind": str(e.get("kind", "")),
        "target": str(e.get("target", "")),
        "details": text if len(text) <= 240 else text[:237] + "...",
    }


def build_state(
    run_dir: Path, title: str, source: ReplicaSource | None, view: View
) -> dict[str, Any]:
    """The JSON the page polls: run figures, charts, timeline, replicas, nodes, log tails,
    and a row per tenant in a tenancy run (:func:`~harness.live.tenants.tenant_rows`)."""
    data = read_current(run_dir, event_filter=view)
    rows = replica_rows(source, view)
    logs = {}
    for row in rows:
        path = replica_log(run_dir, str(row.get("id")), {str(row.get("id"))})
        if path is not None:
            lines = tail_lines(path, LOG_MAX_LINES)  # the view may hide some of them
            logs[str(row["id"])] = viewed_lines(str(row["id"]), lines, view)[-LOG_LINES:]
    req = data.requests
    kinds = [str(e.get("kind")) for e in data.timeline]
    tenants = tenant_rows(run_dir)  # a tenancy run: its records are per tenant
    return {
        "title": title,
        "run": {
            "elapsed_s": round(data.duration_s, 1),
            "requests": len(req) + sum(t["requests"] for t in tenants),
            "errors": (int(failed_mask(req).sum()) if len(req) else 0)
            + sum(t["errors"] for t in tenants),
            "load_started": "load_start" in kinds,
            "ended": "run_end" in kinds,
        },
        "charts": chart_svgs(data),
        "timeline": [_event_row(e, data.t0) for e in data.timeline[-TIMELINE_EVENTS:]],
        "tenants": tenants,
        "replicas": rows,
        "nodes": nodes_ready(rows),
        "logs": logs,
    }
