"""Charts as inline SVG: geometry is computed here from plain data, drawn by one template
(templates/charts/chart.svg.j2, autoescaped), with every value written on the chart so it reads without
hovering and prints. Text stays text, so the page is searchable and Japanese renders with the page font.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

WIDTH = 760
LABEL_W = 170
VALUE_W = 240
ROW_GAP = 10


@dataclass
class Canvas:
    """Shapes of one chart; `render` in roi/report/render.py turns it into SVG."""

    title: str
    width: int = WIDTH
    height: int = 0
    shapes: list[dict[str, Any]] = field(default_factory=list)

    def rect(self, x: float, y: float, w: float, h: float, cls: str, opacity: float | None = None) -> None:
        self.shapes.append({"kind": "rect", "x": x, "y": y, "w": max(w, 0.0), "h": h, "cls": cls, "opacity": opacity})

    def line(self, x1: float, y1: float, x2: float, y2: float, cls: str) -> None:
        self.shapes.append({"kind": "line", "x1": x1, "y1": y1, "x2": x2, "y2": y2, "cls": cls})

    def text(self, x: float, y: float, value: str, cls: str = "", anchor: str = "start", rotate: float = 0) -> None:
        self.shapes.append(
            {"kind": "text", "x": x, "y": y, "text": value, "cls": cls, "anchor": anchor, "rotate": rotate}
        )


def _scale(lo: float, hi: float, x0: float, x1: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: x0 + (min(max(v, lo), hi) - lo) / span * (x1 - x0)


def _axis(
    c: Canvas, sx: Callable[[float], float], ticks: Sequence[tuple[float, str]], top: float, bottom: float
) -> None:
    for value, label in ticks:
        c.line(sx(value), top, sx(value), bottom, "grid")
        c.text(sx(value), bottom + 14, label, "tick", "middle")


def interval_bars(title: str, rows: Sequence[dict[str, Any]], series: Sequence[str]) -> Canvas:
    """Horizontal bars on 0..1 with interval whiskers; rows: {label, bars: [{value, low, high, text}]},
    one bar per series (the legend names them)."""
    c = Canvas(title)
    bar_h, x0, x1 = 14, LABEL_W, WIDTH - VALUE_W
    sx = _scale(0.0, 1.0, x0, x1)
    y = 34
    for i, name in enumerate(series):
        c.rect(x0 + i * 110, 8, 12, 12, f"s{i}")
        c.text(x0 + i * 110 + 18, 18, name, "legend")
    top = y
    for row in rows:
        c.text(x0 - 8, y + bar_h * len(series) / 2 + 4, str(row["label"]), "label", "end")
        for i, bar in enumerate(row["bars"]):
            yy = y + i * bar_h
            if bar.get("value") is not None:
                c.rect(x0, yy + 1, sx(bar["value"]) - x0, bar_h - 3, f"s{i}")
            if bar.get("low") is not None and bar.get("high") is not None:
                mid = yy + bar_h / 2
                c.line(sx(bar["low"]), mid, sx(bar["high"]), mid, "whisker")
                c.line(sx(bar["low"]), mid - 4, sx(bar["low"]), mid + 4, "whisker")
                c.line(sx(bar["high"]), mid - 4, sx(bar["high"]), mid + 4, "whisker")
            c.text(x1 + 8, yy + bar_h - 3, str(bar["text"]), f"value s{i}t")
        y += bar_h * len(series) + ROW_GAP
    _axis(c, sx, [(v / 4, f"{v * 25}%") for v in range(5)], top - 4, y - ROW_GAP + 4)
    c.height = int(y + 16)
    return c


def forest(title: str, rows: Sequence[dict[str, Any]], margin: float) -> Canvas:
    """Paired differences with intervals on -1..1; a dashed line at -margin (the non-inferiority margin)."""
    c = Canvas(title)
    row_h, x0, x1 = 22, LABEL_W, WIDTH - VALUE_W
    sx = _scale(-1.0, 1.0, x0, x1)
    top = y = 14
    for row in rows:
        mid = y + row_h / 2
        c.text(x0 - 8, mid + 4, str(row["label"]), "label", "end")
        if row.get("low") is not None and row.get("high") is not None:
            c.line(sx(row["low"]), mid, sx(row["high"]), mid, "whisker")
        if row.get("value") is not None:
            c.rect(sx(row["value"]) - 4, mid - 4, 8, 8, row.get("cls", "s1"))
        c.text(x1 + 8, mid + 4, str(row["text"]), "value")
        y += row_h
    _axis(c, sx, [(v / 2, f"{v * 50:+d}%".replace("+0%", "0%").replace("-", "−")) for v in range(-2, 3)], top, y)
    c.line(sx(-margin), top - 6, sx(-margin), y, "limit")
    c.height = int(y + 22)
    return c


def heatmap(
    title: str,
    tasks: Sequence[str],
    counts: Sequence[Sequence[int]],
    totals: Sequence[int],
    row_caption: str,
    col_caption: str,
) -> Canvas:
    """Task x task counts; a cell's shade is its share of the row's items, its text the count and share."""
    c = Canvas(title)
    cell_w = min(110, (WIDTH - LABEL_W - 20) / max(len(tasks), 1))
    cell_h, x0, y0 = 30, LABEL_W, 58
    c.text(x0, 14, col_caption + " →", "caption")
    c.text(8, y0 - 8, row_caption + " ↓", "caption")
    for j, task in enumerate(tasks):
        c.text(x0 + j * cell_w + cell_w / 2, y0 - 8, str(task), "tick", "middle")
    for i, task in enumerate(tasks):
        y = y0 + i * cell_h
        c.text(x0 - 8, y + cell_h / 2 + 4, str(task), "label", "end")
        for j in range(len(tasks)):
            x = x0 + j * cell_w
            share = counts[i][j] / totals[i] if totals[i] else 0.0
            c.rect(x + 1, y + 1, cell_w - 2, cell_h - 2, "cell")
            if counts[i][j]:
                c.rect(x + 1, y + 1, cell_w - 2, cell_h - 2, "heat", opacity=round(0.15 + 0.85 * share, 3))
            shown = "—" if i == j else f"{counts[i][j]}/{totals[i]}"
            c.text(x + cell_w / 2, y + cell_h / 2 + 4, shown, "cellv", "middle")
    c.height = int(y0 + len(tasks) * cell_h + 10)
    return c


def boxes(title: str, rows: Sequence[dict[str, Any]], limit: float | None) -> Canvas:
    """Latency boxes: p25-p75 box, min-max whiskers, p50 line, p95 mark, dashed limit; values written."""
    c = Canvas(title)
    row_h, x0, x1 = 30, LABEL_W, WIDTH - VALUE_W
    top_value = max([r["max"] for r in rows if r.get("max") is not None] + [limit or 0.0, 1e-9]) * 1.05
    sx = _scale(0.0, top_value, x0, x1)
    top = y = 12
    for row in rows:
        mid = y + row_h / 2
        c.text(x0 - 8, mid + 4, str(row["label"]), "label", "end")
        if row.get("max") is not None:
            c.line(sx(row["min"]), mid, sx(row["max"]), mid, "whisker")
            c.rect(sx(row["p25"]), mid - 8, sx(row["p75"]) - sx(row["p25"]), 16, row.get("cls", "s0"))
            c.line(sx(row["p50"]), mid - 9, sx(row["p50"]), mid + 9, "median")
            c.line(sx(row["p95"]), mid - 11, sx(row["p95"]), mid + 11, "p95")
        c.text(x1 + 8, mid + 4, str(row["text"]), "value")
        y += row_h
    step = _nice_step(top_value)
    ticks = [(k * step, f"{k * step:g}") for k in range(int(top_value / step) + 1)]
    _axis(c, sx, ticks, top, y)
    if limit is not None:
        c.line(sx(limit), top - 6, sx(limit), y, "limit")
    c.height = int(y + 22)
    return c


def _nice_step(span: float) -> float:
    """A round tick step (1, 2 or 5 x a power of ten) giving about five ticks."""
    raw = span / 5
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(f * magnitude for f in (1, 2, 5, 10) if raw <= f * magnitude)


def value_bars(title: str, rows: Sequence[dict[str, Any]], series: Sequence[str]) -> Canvas:
    """Horizontal bars from 0 to the largest value; rows: {label, bars: [{value, text}]} (None: unknown,
    drawn as text only)."""
    c = Canvas(title)
    bar_h, x0, x1 = 14, LABEL_W, WIDTH - VALUE_W
    known = [b["value"] for r in rows for b in r["bars"] if b.get("value") is not None]
    sx = _scale(0.0, max([*known, 1e-12]), x0, x1)
    for i, name in enumerate(series):
        c.rect(x0 + i * 110, 8, 12, 12, f"s{i}")
        c.text(x0 + i * 110 + 18, 18, name, "legend")
    y = 34
    for row in rows:
        c.text(x0 - 8, y + bar_h * len(series) / 2 + 4, str(row["label"]), "label", "end")
        for i, bar in enumerate(row["bars"]):
            yy = y + i * bar_h
            if bar.get("value") is not None:
                c.rect(x0, yy + 1, sx(max(bar["value"], 0.0)) - x0, bar_h - 3, f"s{i}")
            c.text(x1 + 8, yy + bar_h - 3, str(bar["text"]), f"value s{i}t")
        y += bar_h * len(series) + ROW_GAP
    c.line(x0, 30, x0, y - ROW_GAP + 4, "axis")
    c.height = int(y + 6)
    return c
