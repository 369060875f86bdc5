"""Intervals and tests for rates, paired comparisons, quantiles and cluster resampling.

Pure functions with hand-checkable answers. The interval functions take numpy arrays (any shape) as
well as plain numbers, so benchmarks/calibration.py runs the very code the decision uses on
thousands of simulated pilots at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np

LEVEL = 0.95
Z95 = 1.959963984540054

ArrayLike = Any  # a number or a numpy array of numbers


def z_for(level: float) -> float:
    """The two-sided standard normal quantile of a confidence level (0.95 gives 1.96)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def simultaneous_level(level: float, family: int) -> float:
    """Bonferroni: each of `family` intervals at 1 - (1 - level) / family, so that all of them hold
    together with probability at least `level`."""
    return 1 - (1 - level) / max(1, family)


# ---------------------------------------------------------------- one rate


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson interval (95% unless said otherwise) and n."""

    k: int
    n: int
    value: float | None
    low: float | None
    high: float | None


def wilson_bounds(k: ArrayLike, n: ArrayLike, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (Wilson 1927, JASA 22:209): honest near 0 and 1 and for small n, unlike
    the normal approximation. NaN where n is 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(np.maximum(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    # At k = 0 (k = n) the lower (upper) end is exactly 0 (1); rounding would leave 1e-17 off it.
    low = np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(k == n, 1.0, np.clip(centre + half, 0.0, 1.0))
    nan = np.isnan(centre)
    return np.where(nan, np.nan, low), np.where(nan, np.nan, high)


def wilson(k: int, n: int, z: float = Z95) -> Rate:
    if n == 0:
        return Rate(k, 0, None, None, None)
    low, high = wilson_bounds(k, n, z)
    return Rate(k, n, k / n, float(low), float(high))


# ---------------------------------------------------------------- paired proportions


def paired_interval(
    both: ArrayLike, first_only: ArrayLike, second_only: ArrayLike, neither: ArrayLike, z: float = Z95
) -> tuple[np.ndarray, np.ndarray]:
    """Interval for p1 - p2, the difference of two proportions measured on the same items: Newcombe's
    hybrid score interval for paired data (Newcombe 1998, "Improved confidence intervals for the
    difference between binomial proportions based on paired data", Stat Med 17:2635-2650, method 10).

    Cells: `both` right in both, `first_only` right only in the first, `second_only` right only in the
    second, `neither`; p1 = (both + first_only) / n, p2 = (both + second_only) / n. The Wilson intervals
    (l1, u1) and (l2, u2) of p1 and p2 are combined through the correlation of the table,
    phi = (both * neither - first_only * second_only) / sqrt of the product of the four margins, with
    Newcombe's correction of a positive numerator to max(numerator - n / 2, 0) and phi = 0 when a margin
    is empty:
        low  = p1 - p2 - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        high = p1 - p2 + sqrt((u1 - p1)^2 - 2 phi (u1 - p1)(p2 - l2) + (p2 - l2)^2)
    Unlike a bootstrap of paired differences, it does not collapse to a point when no pair disagrees
    (31 items all right in both modes give about -0.11 to 0.11). NaN where n is 0."""
    e, f, g, h = (np.asarray(x, dtype=float) for x in (both, first_only, second_only, neither))
    n = e + f + g + h
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = (e + f) / n, (e + g) / n
        l1, u1 = wilson_bounds(e + f, n, z)
        l2, u2 = wilson_bounds(e + g, n, z)
        margins = (e + f) * (g + h) * (e + g) * (f + h)
        numerator = e * h - f * g
        numerator = np.where(numerator > 0, np.maximum(numerator - n / 2, 0.0), numerator)
        phi = np.where(margins > 0, numerator / np.sqrt(np.where(margins > 0, margins, 1.0)), 0.0)
        below = np.sqrt(np.maximum((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
        above = np.sqrt(np.maximum((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return np.maximum(p1 - p2 - below, -1.0), np.minimum(p1 - p2 + above, 1.0)


@dataclass(frozen=True)
class PairedDiff:
    """Mean of b - a over paired 0/1 outcomes, with its 95% interval (Newcombe's hybrid score interval
    for paired data) and the exact McNemar p. The four cells of the paired table are kept, so a gate
    can recompute the interval at another level."""

    n: int
    diff: float | None
    low: float | None
    high: float | None
    a_only: int  # items right in a, wrong in b
    b_only: int  # items right in b, wrong in a
    mcnemar_p: float | None
    both: int = 0  # items right in both
    neither: int = 0  # items wrong in both


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar test: a binomial test on the discordant pairs."""
    discordant = a_only + b_only
    if discordant == 0:
        return 1.0
    low = min(a_only, b_only)
    tail = sum(math.comb(discordant, i) for i in range(low + 1)) / 2**discordant
    return float(min(1.0, 2 * tail))


def paired_difference(a: np.ndarray, b: np.ndarray, z: float = Z95) -> PairedDiff:
    """Compare two 0/1 outcome vectors on the same items (b minus a)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired outcomes need the same items in the same order")
    n = int(a.size)
    both = int(np.sum((a == 1) & (b == 1)))
    a_only = int(np.sum((a == 1) & (b == 0)))
    b_only = int(np.sum((a == 0) & (b == 1)))
    neither = n - both - a_only - b_only
    if n == 0:
        return PairedDiff(0, None, None, None, 0, 0, None)
    low, high = paired_interval(both, b_only, a_only, neither, z)
    diff = (b_only - a_only) / n
    return PairedDiff(n, diff, float(low), float(high), a_only, b_only, mcnemar_exact(a_only, b_only), both, neither)


# ---------------------------------------------------------------- quantiles of clustered latencies


@lru_cache(maxsize=4096)
def binomial_cdf(n: int, p: float) -> np.ndarray:
    """P(Binomial(n, p) <= j) for j = 0..n, from the pmf's ratio recurrence summed in log space."""
    if p <= 0 or p >= 1:
        cdf = np.ones(n + 1) if p <= 0 else np.zeros(n + 1)
        cdf[n] = 1.0
        return cdf
    j = np.arange(n)
    steps = np.log((n - j) / (j + 1)) + math.log(p / (1 - p))
    log_pmf = np.concatenate([[0.0], np.cumsum(steps)])
    pmf = np.exp(log_pmf - log_pmf.max())
    return np.asarray(np.minimum(np.cumsum(pmf) / pmf.sum(), 1.0))


@lru_cache(maxsize=4096)
def order_statistic_ranks(n: int, q: float, level: float = LEVEL) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order statistics X(l) <= x_q <= X(u) that bound the q-quantile x_q
    of any continuous distribution with probability at least `level`, each end missing it at most
    (1 - level) / 2 (Conover, Practical Nonparametric Statistics, 3rd ed. 1999, section 3.2). An end
    is None when n is too small: with 30 values no order statistic is a 97.5% upper bound of the
    95th percentile (the largest exceeds it with probability 1 - 0.95^30 = 0.785)."""
    tail = (1 - level) / 2
    cdf = binomial_cdf(n, q)  # cdf[r - 1] = P(X(r) > x_q): fewer than r values below x_q
    uppers = np.nonzero(cdf >= 1 - tail)[0]
    lowers = np.nonzero(cdf <= tail)[0]
    upper = int(uppers[0]) + 1 if uppers.size and uppers[0] + 1 <= n else None
    lower = int(lowers[-1]) + 1 if lowers.size else None
    return lower, upper


@dataclass(frozen=True)
class QuantileInterval:
    """A quantile of per-item latency measured on calls (every item of a call shares its latency)."""

    value: float | None
    low: float | None  # None: no order statistic bounds it at this n
    high: float | None
    calls: int
    effective_calls: int  # Kish's effective number of calls of unequal size


def effective_calls(weights: np.ndarray) -> np.ndarray:
    """Kish's effective sample size (sum w)^2 / sum w^2 along the last axis, rounded down; equal
    weights give the number of calls."""
    w = np.asarray(weights, dtype=float)
    return np.asarray(np.floor(w.sum(axis=-1) ** 2 / np.maximum((w * w).sum(axis=-1), 1e-300) + 1e-9), dtype=int)


def quantile_bounds(
    values: np.ndarray, weights: np.ndarray, q: float, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Distribution-free bounds of the item-weighted q-quantile of call latencies, per row of 2-D arrays
    (one row per pilot; weights 0 pad rows of different length). Rank r of `order_statistic_ranks` at
    Kish's effective number of calls n maps to the smallest latency whose item-weighted cumulative
    share reaches r / n: with calls of equal size that is exactly the r-th smallest call. NaN where the
    end is unbounded (too few calls)."""
    values, weights = np.atleast_2d(values).astype(float), np.atleast_2d(weights).astype(float)
    order = np.argsort(np.where(weights > 0, values, np.inf), axis=1)
    sorted_values = np.take_along_axis(values, order, axis=1)
    share = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)
    share /= np.maximum(share[:, -1:], 1e-300)
    n_eff = effective_calls(weights)
    ends = []
    for which in (0, 1):
        rank = np.array([_rank(int(n), q, level, which) for n in n_eff], dtype=float)
        target = rank / np.maximum(n_eff, 1)
        index = np.argmax(share >= target[:, None] - 1e-12, axis=1)
        found = np.take_along_axis(sorted_values, index[:, None], axis=1)[:, 0]
        ends.append(np.where(np.isnan(rank), np.nan, found))
    return ends[0], ends[1]


def _rank(n: int, q: float, level: float, which: int) -> float:
    rank = order_statistic_ranks(n, q, level)[which] if n > 0 else None
    return math.nan if rank is None else float(rank)


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float | None:
    """The q-quantile (0..1) of items whose latency is their call's: each call counted once per item."""
    counts = np.asarray(weights, dtype=int)
    return percentile(np.repeat(np.asarray(values, dtype=float), counts), q * 100)


def quantile_interval(values: np.ndarray, weights: np.ndarray, q: float, level: float = LEVEL) -> QuantileInterval:
    """The item-weighted q-quantile of call latencies with its distribution-free interval."""
    values, weights = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    if values.size == 0:
        return QuantileInterval(None, None, None, 0, 0)
    low, high = quantile_bounds(values, weights, q, level)
    value = weighted_percentile(values, weights, q)

    def end(x: np.ndarray) -> float | None:
        return None if np.isnan(x[0]) else float(x[0])

    return QuantileInterval(value, end(low), end(high), int(values.size), int(effective_calls(weights)))


# ---------------------------------------------------------------- cluster resampling


def cluster_resample_counts(n_clusters: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap draws of clusters: row 0 counts every cluster once (the sample itself), rows 1..resamples
    count how often each cluster is drawn when n_clusters are drawn with replacement. A statistic that
    is a ratio of cluster sums is then `counts @ sums / counts @ sizes`, one value per row. Memory:
    (resamples + 1) x n_clusters floats."""
    rng = np.random.default_rng(seed)
    counts = np.ones((resamples + 1, n_clusters))
    if n_clusters:
        counts[1:] = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=resamples)
    return counts


def percentile_bounds(draws: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over the last axis of `draws` (its first entry is the sample's own
    figure and is left out)."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws[..., 1:], [tail, 100 - tail], axis=-1)
    return low, high


def correlations(draws: np.ndarray) -> np.ndarray:
    """Correlation matrix of the components on axis -2 over the draws on the last axis (leading axes:
    several pilots), counting only the draws where every component is finite. A component that does not
    vary is uncorrelated with the others."""
    draws = np.asarray(draws, dtype=float)
    ok = np.isfinite(draws).all(axis=-2, keepdims=True)
    used = np.maximum(ok.sum(axis=-1, keepdims=True), 1)
    mean = np.where(ok, draws, 0.0).sum(axis=-1, keepdims=True) / used
    dev = np.where(ok, draws - mean, 0.0)
    cov = dev @ np.swapaxes(dev, -1, -2)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    scale = sd[..., :, None] * sd[..., None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(scale > 0, cov / np.where(scale > 0, scale, 1.0), 0.0)
    k = draws.shape[-2]
    r[..., np.arange(k), np.arange(k)] = 1.0
    return np.asarray(r)


def mover_sum_bounds(
    values: np.ndarray, lows: np.ndarray, highs: np.ndarray, draws: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Interval of a sum of estimated components, each with its own interval: MOVER, the method of
    variance estimates recovery (Zou & Donner 2008, "Construction of confidence limits about effect
    measures: a general approach", Stat Med 27:1693-1702; for correlated components, Zou 2008, Am J
    Epidemiol 168:212-224). With d_i = value_i - low_i and e_i = high_i - value_i,
        low  = sum(value) - sqrt(sum_ij r_ij d_i d_j)
        high = sum(value) + sqrt(sum_ij r_ij e_i e_j)
    where r is the components' correlation, here measured over cluster bootstrap `draws` (components
    on axis -2, draws on the last; draw 0 is the sample's and is left out). Each component keeps the
    shape of its own interval (a Wilson or Newcombe interval does not collapse when nothing varies),
    and the sum's interval is as wide as theirs allow. Components on the last axis of `values`."""
    values, lows, highs = (np.asarray(x, dtype=float) for x in (values, lows, highs))
    r = correlations(np.asarray(draws, dtype=float)[..., 1:])
    below, above = values - lows, highs - values
    spread_low = np.einsum("...i,...ij,...j->...", below, r, below)
    spread_high = np.einsum("...i,...ij,...j->...", above, r, above)
    total = values.sum(axis=-1)
    return total - np.sqrt(np.maximum(spread_low, 0.0)), total + np.sqrt(np.maximum(spread_high, 0.0))


RATIO_MIN_CLUSTERS = 3


def ratio_bounds(
    numerator: np.ndarray, denominator: np.ndarray, counts: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Interval for the ratio of two totals over clusters (clusters on the last axis, leading axes
    for several pilots), from the cluster draws `counts` of `cluster_resample_counts`: a bootstrap-t on
    the log scale (Davison & Hinkley, Bootstrap Methods and their Application, 1997, sections 2.4 and
    5.2). Each resample's log ratio is studentised by its own linearised standard error,
    se^2 = n / (n - 1) * sum_i w_i (a_i / A - b_i / B)^2 with A, B the resample's totals, and the
    interval is log r - t_(R + 1 - k) se to log r - t_(k) se, with t_(j) the j-th smallest t of the R
    resamples that have one and k = floor((R + 1) tail), tail = (1 - level) / 2, at least 1. These are
    Davison & Hinkley's (R + 1) alpha order statistics (section 5.2): for an exact
    pivot each end then misses in k / (R + 1) <= tail of samples, where an interpolated percentile lies
    about one resample further in (with R = 2000, 2.55% a side instead of 2.50%). For a skewed cost ratio
    the bootstrap-t keeps each end's miss rate near its nominal 2.5% where the percentile interval misses
    the lower end more often; that error is of order 1/n, not zero at a pilot's size, and it grows with
    the costs' right tail, which a sample of calls under-represents (BENCHMARKS.md, "Calibration").
    Both totals must be positive; no spread gives [r, r]; fewer than `RATIO_MIN_CLUSTERS` clusters give
    no interval (NaN ends: every resample of two clusters that has a t has t = 0). Each end stays within
    the range of the clusters' own ratios, which bounds the ratio of totals of every resample: with a
    handful of clusters a near-flat resample's t runs off to ends no resample of these clusters shows;
    with a pilot's number of calls the range does not bind."""
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    n = a.shape[-1]
    if n < RATIO_MIN_CLUSTERS:
        return np.full(a.shape[:-1], np.nan), np.full(a.shape[:-1], np.nan)
    total_a, total_b = a @ counts.T, b @ counts.T
    with np.errstate(divide="ignore", invalid="ignore"):
        log_r = np.log(total_a / total_b)
        spread = (a * a) @ counts.T / total_a**2 - 2 * (a * b) @ counts.T / (total_a * total_b)
        spread += (b * b) @ counts.T / total_b**2
        se = np.sqrt(np.maximum(spread, 0.0) * n / max(n - 1, 1))
        t = (log_r[..., 1:] - log_r[..., :1]) / se[..., 1:]
    # A resample with no spread (one cluster drawn n times) has no t: it is left out, not clamped, so R
    # counts only the resamples with a t. np.sort puts the NaN of those last; the NaN column added
    # gives no resamples at all a place to index.
    t = np.sort(np.where(np.isfinite(t), t, np.nan), axis=-1)
    t = np.concatenate([t, np.full((*t.shape[:-1], 1), np.nan)], axis=-1)
    resamples = np.isfinite(t).sum(axis=-1)
    tail = (1 - level) / 2
    # The small epsilon keeps (R + 1) tail from falling just below a whole number in floating point.
    k = np.maximum(np.floor((resamples + 1) * tail + 1e-9).astype(int), 1)
    t_low = np.take_along_axis(t, np.minimum(k - 1, resamples)[..., None], axis=-1)[..., 0]
    t_high = np.take_along_axis(t, np.maximum(resamples - k, 0)[..., None], axis=-1)[..., 0]
    flat = ~(se[..., 0] > 0) | (resamples == 0)
    low = np.where(flat, log_r[..., 0], log_r[..., 0] - t_high * se[..., 0])
    high = np.where(flat, log_r[..., 0], log_r[..., 0] - t_low * se[..., 0])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a degenerate resample may run off
        ratios = a / b  # 0/0 (a cluster with no cost either way) is NaN, which fmin and fmax skip
        lowest = np.fmin.reduce(ratios, axis=-1)
        highest = np.fmax.reduce(ratios, axis=-1)
        return np.fmax(np.exp(low), lowest), np.fmin(np.exp(high), highest)


def percentile(values: list[float] | np.ndarray, q: float) -> float | None:
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, q)) if arr.size else None


def bootstrap_mean_interval(
    values: np.ndarray, *, resamples: int = 4000, seed: int = 0, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean of independent values (resampled with replacement)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
