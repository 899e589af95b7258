"""Inline SVG line charts, hand-written so that the report needs no library and no network.

A chart is a plain ``<svg>`` element: axes with tick labels, one polyline path per series
(NaN breaks a line), shaded windows (the faults, and the seconds the load generator was
saturated), optional dashed reference lines (the SLO
objectives) and a legend. Every series path carries a ``<title>`` with its name, so
hovering names it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

#: Colours of series, in order (colour-blind friendly, Okabe-Ito).
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
)

WIDTH = 920
HEIGHT = 250
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 40, 34


@dataclass
class Series:
    """One line: x values (seconds from load start) and y values (NaN: no value)."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    step: bool = False
    dashed: bool = False
    color: str | None = None


@dataclass
class Window:
    """A shaded span of x, labelled: a ``fault`` (at the top of the plot) or seconds of a
    saturated load generator, ``instrument`` (at the bottom, so both labels show)."""

    start: float
    end: float
    label: str
    kind: str = "fault"


@dataclass
class Chart:
    """A chart's content; :func:`render` turns it into SVG."""

    id: str
    title: str
    y_label: str
    series: list[Series]
    x_max: float
    windows: list[Window] = field(default_factory=list)
    refs: list[tuple[str, float]] = field(default_factory=list)
    log_y: bool = False
    y_max: float | None = None
    percent: bool = False
    #: The SVG's own size (its viewBox); the page scales it to its box. Smaller for the
    #: game-day report's per-experiment plots.
    width: int = WIDTH
    height: int = HEIGHT


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]`` (about ``count`` of them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 10000:
        return f"{v / 1000:.0f}k"
    if abs(v) >= 100 or v == int(v):
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def render(chart: Chart) -> str:
    """The chart as an ``<svg class="plot">`` element."""
    width, height = chart.width, chart.height
    pw, ph = width - LEFT - RIGHT, height - TOP - BOTTOM
    x_max = chart.x_max if chart.x_max > 0 else 1.0
    ys = [y for s in chart.series for y in _finite(s.ys)] + [v for _, v in chart.refs]
    if chart.log_y:
        ys = [y for y in ys if y > 0]
        lo = 10 ** math.floor(math.log10(min(ys))) if ys else 1.0
        hi = 10 ** math.ceil(math.log10(max(ys))) if ys else 10.0
        hi = max(hi, lo * 10)
        ticks = [10.0**e for e in range(round(math.log10(lo)), round(math.log10(hi)) + 1)]

        def ty(v: float) -> float:
            v = max(v, lo)
            return TOP + ph - (math.log10(v) - math.log10(lo)) / (math.log10(hi / lo)) * ph

    else:
        lo = 0.0
        hi = chart.y_max if chart.y_max is not None else (max(ys) if ys else 1.0)
        hi = hi * 1.08 if chart.y_max is None else hi
        hi = hi if hi > 0 else 1.0
        ticks = nice_ticks(lo, hi)

        def ty(v: float) -> float:
            return TOP + ph - (min(max(v, lo), hi) - lo) / (hi - lo) * ph

    def tx(v: float) -> float:
        return LEFT + min(max(v, 0.0), x_max) / x_max * pw

    out = [
        f'<svg class="plot" id="{escape(chart.id)}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(chart.title)}">',
        f'<text class="title" x="{LEFT}" y="16">{escape(chart.title)}</text>',
    ]
    for w in chart.windows:
        x0, x1 = tx(w.start), tx(w.end)
        kind = escape(w.kind)
        label_y = TOP + 11 if w.kind == "fault" else TOP + ph - 4
        out.append(
            f'<rect class="{kind}" x="{x0:.1f}" y="{TOP}" width="{max(1.0, x1 - x0):.1f}" '
            f'height="{ph}"><title>{escape(w.label)}</title></rect>'
            f'<text class="{kind}label" x="{x0 + 3:.1f}" y="{label_y}">{escape(w.label)}</text>'
        )
    for t in ticks:
        y = ty(t)
        label = _fmt(t * 100) + "%" if chart.percent else _fmt(t)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
        )
    for t in nice_ticks(0.0, x_max, 10):
        x = tx(t)
        out.append(
            f'<line class="xtick" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + ph}" y2="{TOP + ph + 4}"/>'
            f'<text class="tick" x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle">'
            f"{_fmt(t)}</text>"
        )
    out.append(
        f'<text class="axis" x="{LEFT + pw / 2}" y="{height - 3}" text-anchor="middle">'
        "seconds since load start</text>"
        f'<text class="axis" transform="translate(12 {TOP + ph / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(chart.y_label)}</text>'
        f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>'
    )
    for name, value in chart.refs:
        y = ty(value)
        out.append(
            f'<line class="ref" x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}">'
            f"<title>{escape(name)}</title></line>"
            f'<text class="reflabel" x="{LEFT + pw - 4}" y="{y - 4:.1f}" text-anchor="end">'
            f"{escape(name)}</text>"
        )
    legend_x, legend_y, hidden = float(LEFT), 30, 0
    for i, s in enumerate(chart.series):
        color = s.color or PALETTE[i % len(PALETTE)]
        path = _path(s, tx, ty)
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        if path:
            out.append(
                f'<path class="series" d="{path}" stroke="{color}"{dash}>'
                f"<title>{escape(s.name)}</title></path>"
            )
        entry = 28 + len(s.name) * 6.5
        if legend_x + entry > width - RIGHT - 60:
            hidden += 1  # hovering a line still names it
            continue
        out.append(
            f'<rect x="{legend_x:.0f}" y="{legend_y - 5}" width="12" height="3" fill="{color}"/>'
            f'<text class="legend" x="{legend_x + 16:.0f}" y="{legend_y}">{escape(s.name)}</text>'
        )
        legend_x += entry
    if hidden:
        out.append(f'<text class="legend" x="{legend_x:.0f}" y="{legend_y}">+{hidden} more</text>')
    if not any(_finite(s.ys) for s in chart.series):
        out.append(
            f'<text class="empty" x="{LEFT + pw / 2}" y="{TOP + ph / 2}" '
            'text-anchor="middle">no data</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _path(s: Series, fx: Callable[[float], float], fy: Callable[[float], float]) -> str:
    parts: list[str] = []
    pen_up = True
    prev_y: float | None = None
    for x, y in zip(s.xs, s.ys, strict=False):
        if y is None or not math.isfinite(y) or x is None or not math.isfinite(x):
            pen_up = True
            continue
        px, py = fx(x), fy(y)
        if pen_up:
            parts.append(f"M{px:.1f} {py:.1f}")
            pen_up = False
        elif s.step and prev_y is not None:
            parts.append(f"H{px:.1f}V{py:.1f}")
        else:
            parts.append(f"L{px:.1f} {py:.1f}")
        prev_y = py
    return "".join(parts)
