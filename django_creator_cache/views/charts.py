"""The admin stats page's chart of the last hour, as geometry the template only draws.

``chart`` turns ``history`` points into bars (operations per minute) and a line
(hit rate); no HTML here, no request, nothing from Redis.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .. import history


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Chart:
    """Geometry of the last hour's SVG chart, computed here so the template only draws."""

    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    bars: list[Bar]
    lines: list[str]
    dots: list[tuple[float, float, str]]
    rate_ticks: list[tuple[float, str]]
    ops_ticks: list[tuple[float, str]]
    time_ticks: list[tuple[float, str]]
    samples: int


def _nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``value`` (the chart's top)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def chart(points: list[history.Point], now: float, window: float = history.WINDOW) -> Chart | None:
    """Bars of operations per minute and a line of the hit rate, over the last ``window``."""
    if not points:
        return None
    width, height = 720, 220
    left, right, top, bottom = 52.0, width - 64.0, 12.0, height - 30.0
    start = now - window

    def x(t: float) -> float:
        return left + min(max((t - start) / window, 0.0), 1.0) * (right - left)

    top_ops = _nice_ceiling(max(p.ops_per_minute for p in points))
    plot = bottom - top
    bars, lines, dots = [], [], []
    segment: list[str] = []
    for p in points:
        x0, x1 = x(p.start), x(p.end)
        bar_height = p.ops_per_minute / top_ops * plot
        rate = "no reads" if p.hit_rate is None else f"hit rate {p.hit_rate * 100:.1f} %"
        title = (
            f"{time.strftime('%H:%M', time.localtime(p.end))}: "
            f"{p.ops_per_minute:,.0f} operations/min, {rate}"
        )
        bars.append(
            Bar(round(x0 + 0.5, 1), round(bottom - bar_height, 1), round(max(x1 - x0 - 1, 1.5), 1),
                round(bar_height, 1), title)
        )  # fmt: skip
        if p.hit_rate is None:
            if segment:
                lines.append(" ".join(segment))
            segment = []
            continue
        cx, cy = round((x0 + x1) / 2, 1), round(bottom - p.hit_rate * plot, 1)
        segment.append(f"{cx},{cy}")
        dots.append((cx, cy, title))
    if segment:
        lines.append(" ".join(segment))
    return Chart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        bars=bars,
        lines=lines,
        dots=dots,
        rate_ticks=[(round(bottom - f * plot, 1), f"{f * 100:.0f} %") for f in (0, 0.5, 1)],
        ops_ticks=[(round(bottom - f * plot, 1), _short(top_ops * f)) for f in (0, 0.5, 1)],
        time_ticks=[
            (round(x(start + window * f), 1), label)
            for f, label in ((0, "60 min ago"), (0.5, "30 min ago"), (1, "now"))
        ],
        samples=len(points) + 1,
    )
