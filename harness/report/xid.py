"""XID codes: what NVIDIA's driver reports when a GPU fails, what each means, and what
NVIDIA documents as the action to take.

Why in the report: an XID number on its own tells on-call nothing; the report and the
scorecard turn every XID seen during a run (injected by a fault, whose events carry
``"xid": N``, or read from NVML as ``xid`` rows of ``telemetry.csv``) into its meaning and
the action NVIDIA's XID catalog and GPU debug guidelines give for it (restart the
application, reset the GPU, drain the node, ...).

Sources: NVIDIA "XID Errors" (docs.nvidia.com/deploy/xid-errors) and "GPU Debug Guidelines"
(docs.nvidia.com/deploy/gpu-debug-guidelines), as of driver r550-r570. The actions are
summarised; the catalog is the reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Xid:
    """One XID code: its meaning, NVIDIA's documented action, and how bad it is."""

    code: int
    meaning: str
    action: str
    #: app: the application's own fault (fix or restart it); gpu: the GPU needs a reset or
    #: a reboot; node: take the node out (drain) and have the hardware looked at
    scope: str


XIDS: dict[int, Xid] = {
    x.code: x
    for x in (
        Xid(
            13,
            "Graphics engine exception (illegal address, out-of-range index, assert in a kernel)",
            "Usually the application's bug: restart the application; if it repeats across "
            "applications, run GPU diagnostics (dcgmi diag)",
            "app",
        ),
        Xid(
            31,
            "GPU memory page fault (illegal memory access by a kernel)",
            "Usually the application's bug: restart the application (its CUDA context is "
            "lost); if it repeats across applications, run diagnostics",
            "app",
        ),
        Xid(
            43,
            "GPU stopped processing (a kernel was killed, the channel reset)",
            "The application's context is gone: restart the application; the GPU itself "
            "stays usable",
            "app",
        ),
        Xid(
            45,
            "Preemptive cleanup after an earlier error (the context was torn down)",
            "Follows another XID or a killed process: act on the XID before it; restart the "
            "application",
            "app",
        ),
        Xid(
            48,
            "Double-bit ECC error (uncorrectable memory error)",
            "Restart the applications on that GPU, then reset the GPU (nvidia-smi -r) or "
            "reboot so the page is retired; drain the node if it repeats",
            "gpu",
        ),
        Xid(
            63,
            "ECC page retirement or row remapping recorded",
            "Row remapping pending: reset the GPU (or reboot) when convenient to apply it; "
            "no action while it succeeds",
            "gpu",
        ),
        Xid(
            64,
            "ECC page retirement or row remapping failed",
            "Remapping failed: drain the node and reset the GPU; if it persists, RMA the GPU",
            "node",
        ),
        Xid(
            74,
            "NVLink error",
            "Reset the GPU (and its NVLink peers); if it repeats, drain the node and check "
            "the NVLink/NVSwitch hardware",
            "node",
        ),
        Xid(
            79,
            "GPU has fallen off the bus (no longer reachable over PCIe)",
            "Drain the node and reboot it (a GPU reset is usually not possible); check power, "
            "thermals and the PCIe slot; RMA if it repeats",
            "node",
        ),
        Xid(
            92,
            "High single-bit ECC error rate",
            "Reset the GPU when convenient; watch the count; drain and RMA if it keeps rising",
            "gpu",
        ),
        Xid(
            94,
            "Contained ECC error (only the applications using the page are affected)",
            "Restart the affected applications; the GPU keeps serving others; reset the GPU "
            "when convenient to retire the page",
            "app",
        ),
        Xid(
            95,
            "Uncontained ECC error (every application on the GPU is affected)",
            "Stop every application on the GPU and reset the GPU (nvidia-smi -r) or reboot; "
            "drain the node until it is reset",
            "gpu",
        ),
        Xid(
            119,
            "GSP RPC timeout (the GPU System Processor did not answer)",
            "Reset the GPU or reboot the node; drain it if it repeats",
            "gpu",
        ),
    )
}

UNKNOWN_ACTION = "Not in gpuchaos's table: look it up in NVIDIA's XID catalog"


def describe(code: int) -> Xid:
    """The entry of ``code``; an unknown code gets a generic one (never an error)."""
    known = XIDS.get(code)
    if known is not None:
        return known
    return Xid(code, f"XID {code}", UNKNOWN_ACTION, "unknown")


def _code(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return int(value)


def xids_from_timeline(timeline: Sequence[Mapping[str, Any]]) -> list[tuple[float, str, int]]:
    """(time, target, code) of each injected XID: one per ``fault_effect`` event whose
    details carry ``xid`` (a fault's own proof), so a fault counts once."""
    out = []
    for event in timeline:
        if event.get("kind") != "fault_effect":
            continue
        details = event.get("details")
        code = _code(details.get("xid")) if isinstance(details, Mapping) else None
        time = event.get("time")
        if code is not None and isinstance(time, int | float):
            out.append((float(time), str(event.get("target", "")), code))
    return out


def xids_from_telemetry(rows: Iterable[tuple[Any, Any, Any]]) -> list[tuple[float, str, int]]:
    """(time, source, code) from ``(time, source, value)`` of ``xid`` rows (NVML or DCGM)."""
    out = []
    for time, source, value in rows:
        code = _code(value)
        if code is not None and isinstance(time, int | float) and math.isfinite(time):
            out.append((float(time), str(source), code))
    return out


def xid_table(seen: Iterable[tuple[float, str, int, str]], t0: float) -> list[dict[str, Any]]:
    """One row per XID code seen, ``seen`` being (time, where, code, origin) with origin
    ``injected`` or ``telemetry``: count, first time (s from ``t0``), where, meaning, action."""
    rows: dict[int, dict[str, Any]] = {}
    for time, where, code, origin in sorted(seen):
        entry = describe(code)
        row = rows.setdefault(
            code,
            {
                "xid": code,
                "count": 0,
                "first_s": time - t0,
                "where": [],
                "origin": [],
                "meaning": entry.meaning,
                "action": entry.action,
                "scope": entry.scope,
            },
        )
        row["count"] += 1
        if where not in row["where"]:
            row["where"].append(where)
        if origin not in row["origin"]:
            row["origin"].append(origin)
    return [rows[c] for c in sorted(rows)]
