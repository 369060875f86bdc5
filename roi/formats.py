"""Figures for people, shared by the terminal and the report: money in currency format (never in
scientific notation, never NaN), and accuracy changes in signed percentage points. Which change is
shown is the caller's: tables and charts of a run show the accuracy *drop* (single − mixed, positive
when mixed is worse, as the accuracy gate judges it); `roi compare` shows *B − A* (negative when B is
worse); sentences say "mixed is N points worse"."""

from __future__ import annotations

import math

PER = 1000  # small per-item amounts are shown per this many items


def usd(value: float | None, unknown: str = "unknown") -> str:
    """`$1,234`, `$12.34`, `$0.37`, `$0.0030`, `$0.000061`: two significant digits below one dollar."""
    if value is None or not math.isfinite(value):
        return unknown
    sign = "−" if value < 0 else ""
    size = abs(value)
    if size >= 100:
        return f"{sign}${size:,.0f}"
    if size >= 1 or size == 0:
        return f"{sign}${size:,.2f}"
    decimals = max(2, 1 - math.floor(math.log10(size)))
    shown = f"{size:.{decimals}f}"
    if float(shown) >= 1:  # 0.996 rounds up to a dollar
        return f"{sign}${size:,.2f}"
    return f"{sign}${shown}"


def usd_per_1k(per_item: float | None, unknown: str = "unknown") -> str:
    """A per-item amount shown for 1,000 items (the caller's label says so)."""
    return usd(None if per_item is None else per_item * PER, unknown)


def points(change: float | None, unknown: str = "n/a") -> str:
    """A change of two rates (fractions) in signed percentage points: `−38`, `+4`, `0`."""
    if change is None or not math.isfinite(change):
        return unknown
    value = round(change * 100)
    return "0" if value == 0 else f"{value:+d}".replace("-", "−")


def percent(rate: float | None, unknown: str = "n/a") -> str:
    """A rate (fraction) as a whole percentage: `79%`."""
    if rate is None or not math.isfinite(rate):
        return unknown
    return f"{round(rate * 100):d}%"


def p_value(p: float | None, unknown: str = "n/a") -> str:
    """A p-value as people read one: `0.031`, `<0.001` (never `1.8e-12`)."""
    if p is None or not math.isfinite(p):
        return unknown
    return "<0.001" if p < 0.001 else f"{p:.2g}"
