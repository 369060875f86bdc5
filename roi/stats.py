"""Intervals and tests for rates and paired comparisons. Pure functions, hand-checkable."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """A proportion with its 95% Wilson interval and n."""

    k: int
    n: int
    value: float | None
    low: float | None
    high: float | None


def wilson(k: int, n: int, z: float = Z95) -> Rate:
    """Wilson score interval: honest near 0 and 1 and for small n, unlike the normal approximation."""
    if n == 0:
        return Rate(k, 0, None, None, None)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Rate(k, n, p, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class PairedDiff:
    """Mean of b - a over paired items, with a paired bootstrap 95% interval and exact McNemar p."""

    n: int
    diff: float | None
    low: float | None
    high: float | None
    a_only: int  # items right in a, wrong in b
    b_only: int  # items right in b, wrong in a
    mcnemar_p: float | None


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar test: a binomial test on the discordant pairs."""
    discordant = a_only + b_only
    if discordant == 0:
        return 1.0
    low = min(a_only, b_only)
    tail = sum(math.comb(discordant, i) for i in range(low + 1)) / 2**discordant
    return float(min(1.0, 2 * tail))


def paired_difference(a: np.ndarray, b: np.ndarray, *, resamples: int = 4000, seed: int = 0) -> PairedDiff:
    """Compare two 0/1 outcome vectors on the same items (b minus a)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired outcomes need the same items in the same order")
    n = int(a.size)
    a_only = int(np.sum((a == 1) & (b == 0)))
    b_only = int(np.sum((a == 0) & (b == 1)))
    if n == 0:
        return PairedDiff(0, None, None, None, 0, 0, None)
    deltas = b - a
    low, high = bootstrap_mean_interval(deltas, resamples=resamples, seed=seed)
    return PairedDiff(n, float(deltas.mean()), low, high, a_only, b_only, mcnemar_exact(a_only, b_only))


def bootstrap_mean_interval(
    values: np.ndarray, *, resamples: int = 4000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (resampling items with replacement)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def percentile(values: list[float] | np.ndarray, q: float) -> float | None:
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, q)) if arr.size else None


def items_needed_for_margin(margin: float, p: float = 0.5, z: float = Z95) -> int:
    """Items so that a rate's 95% interval half-width is at most `margin` (normal approximation)."""
    if margin <= 0:
        raise ValueError("margin must be positive")
    return math.ceil(z * z * p * (1 - p) / (margin * margin))
