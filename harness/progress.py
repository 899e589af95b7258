"""Live progress of a run: a rich panel on a terminal, plain log lines elsewhere (CI).

It shows the phase, elapsed and remaining time, req/s, p99 latency and error rate over the
last ``window_s`` seconds, replicas Ready per node, GPU memory per GPU (CPU and RSS without
a GPU), and the faults as they start and end. Requests come from tailing ``requests.csv``
incrementally (only the new bytes are read), events from :meth:`Timeline.subscribe`, GPU
figures from the telemetry sampler's last sample.

It must never crash or slow the run: every update is guarded, the timeline callback only
appends to a deque, and the view runs in its own daemon thread.
"""

from __future__ import annotations

import collections
import csv
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.platforms.base import ReplicaInfo
from harness.records import LineTail

log = logging.getLogger(__name__)

#: timeline kinds shown as events (faults and what they do to the platform)
SHOWN_KINDS = frozenset(
    {
        "experiment_start",
        "experiment_end",
        "fault_start",
        "fault_end",
        "node_down",
        "node_up",
        "replica_exit",
        "replica_ready",
        "replica_ejected",
        "replica_returned",
        "scale",
        "abort",
    }
)


class _Replicas(Protocol):
    def replicas(self) -> list[ReplicaInfo]: ...

    def nodes(self) -> list[str]: ...


class _Telemetry(Protocol):
    latest: dict[tuple[str, str], float]


@dataclass
class WindowStats:
    """Figures over the last window of completed requests."""

    requests: int
    rps: float
    p99_ms: float | None
    error_rate: float | None
    total: int
    failed: int


class RequestTail:
    """Reads ``requests.csv`` incrementally: each :meth:`poll` parses only the lines added
    since the last one (a partly written last line waits for the next poll; a file replaced
    by the merge of workers' records is counted again from its start)."""

    def __init__(self, path: Path, window_s: float = 10.0) -> None:
        self.path = path
        self.window_s = window_s
        self._tail = LineTail(path)
        self._window: collections.deque[tuple[float, float, bool]] = collections.deque()
        self.total = 0
        self.failed = 0

    def poll(self) -> int:
        """Read what was appended; returns the number of new records."""
        lines, restarted = self._tail.read()
        if restarted:
            self._window.clear()
            self.total = self.failed = 0
        header = self._tail.header
        if not lines or header is None:
            return 0
        columns = next(csv.reader([header.decode("utf-8", "replace")]))
        new = 0
        for row in csv.reader(line.decode("utf-8", "replace") for line in lines):
            rec = dict(zip(columns, row, strict=False))
            try:
                end = float(rec["end"])
                latency = float(rec["latency_ms"])
                status = int(float(rec.get("status") or 0))
            except (KeyError, ValueError):
                continue
            failed = status != 200 or bool(rec.get("error"))
            self._window.append((end, latency, failed))
            self.total += 1
            self.failed += failed
            new += 1
        return new

    def stats(self, now: float) -> WindowStats:
        """Figures over the requests that ended in the last ``window_s`` seconds."""
        while self._window and self._window[0][0] < now - self.window_s:
            self._window.popleft()
        n = len(self._window)
        if n == 0:
            return WindowStats(0, 0.0, None, None, self.total, self.failed)
        lat = np.fromiter((r[1] for r in self._window), dtype=np.float64, count=n)
        failed = sum(r[2] for r in self._window)
        return WindowStats(
            n,
            n / self.window_s,
            float(np.percentile(lat, 99)),
            failed / n,
            self.total,
            self.failed,
        )


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _describe(event: dict[str, Any], t0: float | None) -> str:
    at = float(event.get("time", 0.0))
    when = f"+{at - t0:6.1f} s" if t0 is not None else time.strftime("%H:%M:%S", time.localtime(at))
    details = event.get("details") or {}
    extra = ""
    if isinstance(details, dict):
        if details.get("fault"):
            extra = f" ({details['fault']})"
        elif details.get("reason"):
            extra = f" ({details['reason']})"
    return f"{when}  {event.get('kind')} {event.get('target', '')}{extra}"


class LiveProgress:
    """The live view of one run. ``interactive`` None: rich when stdout and stderr are
    terminals, plain log lines (one summary every ``summary_every_s``) otherwise."""

    def __init__(
        self,
        *,
        name: str,
        requests_path: Path,
        platform: _Replicas,
        telemetry: _Telemetry | None,
        duration_s: float | None,
        interactive: bool | None = None,
        window_s: float = 10.0,
        summary_every_s: float = 10.0,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interactive is None:
            interactive = (
                sys.stdout.isatty()
                and sys.stderr.isatty()
                and os.environ.get("TERM", "") != "dumb"
                and not os.environ.get("CI")
            )
        self.name = name
        self.interactive = interactive
        self.tail = RequestTail(requests_path, window_s)
        self._platform = platform
        self._telemetry = telemetry
        self._duration = duration_s
        self._summary_every = summary_every_s
        self._refresh = refresh_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self.events: collections.deque[str] = collections.deque(maxlen=8)
        self.active_faults: dict[str, float] = {}
        self.phase = "deploying"
        self.t0: float | None = None
        self.started = clock()
        self.updates = 0

    # -- inputs ------------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """Timeline subscriber: queue the event (cheap, never raises)."""
        try:
            self._pending.append(event)
        except Exception:  # a full deque drops the oldest; nothing else can fail here
            return

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        target = str(event.get("target", ""))
        details = event.get("details") or {}
        if kind == "load_start":
            self.t0 = float(event.get("time", self._clock()))
            if isinstance(details, dict) and details.get("duration_s"):
                self._duration = float(details["duration_s"])
            self.phase = "load"
        elif kind == "phase" and isinstance(details, dict) and details.get("phase"):
            self.phase = str(details["phase"])
        elif kind == "load_end":
            self.phase = "stopping"
        elif kind == "abort":
            self.phase = "aborting"
        if kind == "fault_start":
            self.active_faults[target] = float(event.get("time", self._clock()))
        elif kind == "fault_end":
            self.active_faults.pop(target, None)
        if kind in SHOWN_KINDS:
            line = _describe(event, self.t0)
            self.events.append(line)
            if not self.interactive:
                log.info("progress: %s", line.strip())

    def update(self) -> WindowStats:
        """Apply queued events and read new requests; returns the window's figures."""
        while self._pending:
            event = self._pending.popleft()
            try:
                self._apply(event)
            except Exception:
                log.debug("progress: malformed event %r skipped", event, exc_info=True)
        self.tail.poll()
        self.updates += 1
        return self.tail.stats(self._clock())

    # -- figures -------------------------------------------------------------------------------

    def times(self) -> tuple[float, float | None]:
        """(elapsed, remaining) seconds: of the load once it started, else of the run;
        remaining is None before the load starts or when the load's length is unknown."""
        now = self._clock()
        if self.t0 is None:
            return now - self.started, None
        elapsed = now - self.t0
        if self._duration is None:
            return elapsed, None
        return elapsed, max(0.0, self._duration - elapsed)

    def nodes(self) -> list[tuple[str, int, int]]:
        """(node, Ready replicas, replicas) per node."""
        try:
            replicas = self._platform.replicas()
            names = self._platform.nodes()
        except Exception:
            return []
        out = []
        for node in names:
            mine = [r for r in replicas if r.node == node]
            out.append((node, sum(r.state == "ready" for r in mine), len(mine)))
        pending = sum(1 for r in replicas if r.state == "pending" or r.node not in names)
        if pending:  # wanted, no node with room (a pool node may be on its way)
            out.append(("pending", 0, pending))
        return out

    def devices(self) -> list[str]:
        """One short text per GPU (memory, utilization); CPU and RSS without a GPU."""
        latest = dict(self._telemetry.latest) if self._telemetry is not None else {}
        gpus = sorted({s for s, m in latest if s.startswith("gpu") and m == "memory_used_mib"})
        if gpus:
            out = []
            for g in gpus:
                used = latest.get((g, "memory_used_mib"), 0.0) / 1024
                total = latest.get((g, "memory_total_mib"), 0.0) / 1024
                util = latest.get((g, "utilization_pct"))
                text = f"{g} {used:.1f}/{total:.1f} GiB"
                if util is not None:
                    text += f" {util:.0f}%"
                out.append(text)
            return out
        cpu = latest.get(("system", "cpu_pct"))
        out = [] if cpu is None else [f"CPU {cpu:.0f}%"]
        out += [f"{s} RSS {v:.0f} MiB" for (s, m), v in sorted(latest.items()) if m == "rss_mib"]
        return out

    def summary_line(self, stats: WindowStats) -> str:
        elapsed, remaining = self.times()
        rem = "" if remaining is None else f" remaining {_clock(remaining)}"
        p99 = "-" if stats.p99_ms is None else f"{stats.p99_ms:.0f} ms"
        err = "-" if stats.error_rate is None else f"{stats.error_rate:.2%}"
        nodes = " ".join(f"{n}={r}/{t}" for n, r, t in self.nodes())
        faults = ",".join(sorted(self.active_faults)) or "none"
        devices = "; ".join(self.devices())
        return (
            f"{self.phase} elapsed {_clock(elapsed)}{rem} | {stats.rps:.1f} req/s p99 {p99} "
            f"errors {err} | ready {nodes} | faults {faults} | {devices}"
        )

    # -- rendering -------------------------------------------------------------------------------

    def render(self, stats: WindowStats) -> Any:
        """The rich renderable of the current state."""
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        elapsed, remaining = self.times()
        head = Text()
        head.append(f"phase {self.phase}", style="bold cyan")
        head.append(f"   elapsed {_clock(elapsed)}")
        if remaining is not None:
            head.append(f"   remaining {_clock(remaining)}")
        if self.active_faults:
            now = self._clock()
            active = ", ".join(f"{t} ({now - s:.0f} s)" for t, s in self.active_faults.items())
            head.append(f"   FAULT {active}", style="bold red")

        figures = Table.grid(padding=(0, 3))
        for _ in range(4):
            figures.add_column()
        p99 = "-" if stats.p99_ms is None else f"{stats.p99_ms:.0f} ms"
        err = "-" if stats.error_rate is None else f"{stats.error_rate:.2%}"
        err_style = "red" if stats.error_rate else "green"
        figures.add_row(
            Text(f"{stats.rps:.1f} req/s"),
            Text(f"p99 {p99}"),
            Text(f"errors {err}", style=err_style),
            Text(f"total {stats.total} ({stats.failed} failed)", style="dim"),
        )
        nodes = Text("Ready  ")
        for node, ready, total in self.nodes():
            style = "green" if ready == total and total else ("yellow" if ready else "red")
            nodes.append(f"{node} {ready}/{total}   ", style=style)
        devices = Text("   ".join(self.devices()) or "-")
        events = Text("\n".join(self.events) or "(no fault yet)", style="dim")
        return Panel(
            Group(head, figures, nodes, devices, Text("events", style="bold"), events),
            title=f"gpuchaos {self.name}",
            subtitle=f"last {self.tail.window_s:.0f} s",
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            if self.interactive:
                self._run_rich()
            else:
                self._run_plain()
        except Exception:
            log.warning("live progress stopped working; the run goes on", exc_info=True)

    def _run_plain(self) -> None:
        next_summary = self._clock() + self._summary_every
        while not self._stop.wait(self._refresh):
            try:
                stats = self.update()
                if self._clock() >= next_summary:
                    next_summary += self._summary_every
                    log.info("progress: %s", self.summary_line(stats))
            except Exception:
                log.debug("progress update failed", exc_info=True)

    def _run_rich(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(stderr=True)
        stats = self.update()
        with Live(self.render(stats), console=console, auto_refresh=False, transient=False) as live:
            while not self._stop.wait(self._refresh):
                try:
                    live.update(self.render(self.update()), refresh=True)
                except Exception:
                    log.debug("progress update failed", exc_info=True)
            live.update(self.render(self.update()), refresh=True)
