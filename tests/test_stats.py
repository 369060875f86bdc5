"""Statistics against hand-computed and published values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roi.stats import (
    Z95,
    binomial_cdf,
    cluster_resample_counts,
    correlations,
    effective_calls,
    mcnemar_exact,
    mover_sum_bounds,
    order_statistic_ranks,
    paired_difference,
    paired_interval,
    percentile,
    percentile_bounds,
    quantile_bounds,
    quantile_interval,
    ratio_bounds,
    simultaneous_level,
    wilson,
    wilson_bounds,
    z_for,
)


def test_wilson_matches_hand_computation() -> None:
    # k=8, n=10: centre = (0.8 + 1.92/10)/(1 + 3.8415/10) = 0.7170; half-width = 0.2262
    rate = wilson(8, 10)
    assert rate.value == 0.8
    assert rate.low == pytest.approx(0.4902, abs=1e-4)
    assert rate.high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_edges() -> None:
    assert wilson(0, 0).value is None
    zero = wilson(0, 20)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.1611, abs=1e-4)
    full = wilson(20, 20)
    assert full.high == 1.0 and full.low == pytest.approx(0.8389, abs=1e-4)
    # rounding leaves the formula's end 1e-17 off 0 at n = 3, 6, 7, 12, ...: the ends are exact
    low, high = wilson_bounds([0, 0, 0, 3, 7], [3, 6, 7, 3, 7])
    assert (low[:3] == 0.0).all() and (high[3:] == 1.0).all()
    # published: Newcombe 1998 (Stat Med 17:857), Table II, 0/20 -> 0 to 0.1611 and 15/148 -> 0.0624 to 0.1605
    assert wilson(15, 148).low == pytest.approx(0.0624, abs=1e-4)
    assert wilson(15, 148).high == pytest.approx(0.1605, abs=1e-4)


def test_levels() -> None:
    assert z_for(0.95) == pytest.approx(Z95)
    assert simultaneous_level(0.95, 3) == pytest.approx(1 - 0.05 / 3)
    assert z_for(simultaneous_level(0.95, 2)) == pytest.approx(2.2414, abs=1e-4)


# ---------------------------------------------------------------- paired proportions


@pytest.mark.parametrize(
    ("cells", "published"),
    [
        # Newcombe 1998 (Stat Med 17:2635), worked example: 20 pairs right in both, 12 right only in the first,
        # 2 only in the second, 16 in neither; method 10 gives 0.0562 to 0.3292
        ((20, 12, 2, 16), (0.0562, 0.3292)),
        # Fagerland, Lydersen & Laake 2014 (Stat Med 33:2850), airway hyper-responsiveness before and after
        # stem cell transplantation (Bentur et al. 2009): Newcombe hybrid score -0.507 to -0.026
        ((1, 1, 7, 12), (-0.507, -0.026)),
        # Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables (2017), chapter 8:
        # complete response before and after consolidation therapy (Cavo et al. 2012), -0.1186 to -0.0046
        ((59, 6, 16, 80), (-0.1186, -0.0046)),
    ],
)
def test_paired_interval_reproduces_published_values(
    cells: tuple[int, int, int, int], published: tuple[float, float]
) -> None:
    low, high = paired_interval(*cells)
    digits = len(str(published[0]).split(".")[1])
    assert (round(float(low), digits), round(float(high), digits)) == published


def test_paired_interval_by_hand() -> None:
    # 20, 12, 2, 16: p1 = 32/50, p2 = 22/50, difference 0.2. Wilson 95% of 32/50 is 0.501410 to 0.758613,
    # of 22/50 0.311622 to 0.576940; phi = (20 x 16 - 12 x 2 - 50/2) / sqrt(32 x 18 x 22 x 28) = 271 / 595.66
    l1, u1 = 0.501410, 0.758613
    l2, u2 = 0.311622, 0.576940
    phi = 271 / math.sqrt(32 * 18 * 22 * 28)
    below = math.sqrt((0.64 - l1) ** 2 - 2 * phi * (0.64 - l1) * (u2 - 0.44) + (u2 - 0.44) ** 2)
    above = math.sqrt((u1 - 0.64) ** 2 - 2 * phi * (u1 - 0.64) * (0.44 - l2) + (0.44 - l2) ** 2)
    low, high = paired_interval(20, 12, 2, 16)
    assert float(low) == pytest.approx(0.2 - below, abs=2e-6) and float(high) == pytest.approx(0.2 + above, abs=2e-6)


def test_paired_interval_does_not_collapse_without_discordant_pairs() -> None:
    # 31 items right in both: each Wilson interval reaches z^2 / (n + z^2) below 1, phi = 0 (empty margin)
    low, high = paired_interval(31, 0, 0, 0)
    half = Z95**2 / (31 + Z95**2)
    assert (float(low), float(high)) == pytest.approx((-half, half))
    assert half == pytest.approx(0.110, abs=1e-3)


def test_paired_interval_is_antisymmetric_and_vectorised() -> None:
    low, high = paired_interval(np.array([20, 1]), np.array([12, 1]), np.array([2, 7]), np.array([16, 12]))
    swapped_low, swapped_high = paired_interval(np.array([20, 1]), np.array([2, 7]), np.array([12, 1]), [16, 12])
    assert low == pytest.approx(-swapped_high) and high == pytest.approx(-swapped_low)
    assert np.isnan(paired_interval(0, 0, 0, 0)[0])


def test_mcnemar_exact() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    # 0 vs 6 discordant: 2 * 0.5**6
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    # 2 vs 8: 2 * P(X<=2 | n=10) = 2 * (1 + 10 + 45) / 1024
    assert mcnemar_exact(8, 2) == pytest.approx(2 * 56 / 1024)
    assert mcnemar_exact(5, 5) == 1.0


def test_paired_difference_counts_and_interval() -> None:
    a = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1] * 3)
    b = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 1] * 3)
    d = paired_difference(a, b)
    assert d.n == 30
    assert (d.both, d.a_only, d.b_only, d.neither) == (18, 6, 3, 3)
    assert d.diff == pytest.approx(-0.1)
    low, high = paired_interval(18, 3, 6, 3)  # b minus a: b is the first proportion
    assert (d.low, d.high) == (pytest.approx(float(low)), pytest.approx(float(high)))
    assert d.low is not None and d.high is not None and d.low < -0.1 < d.high
    assert d.mcnemar_p == pytest.approx(mcnemar_exact(6, 3))


def test_paired_difference_with_identical_outcomes_keeps_its_width() -> None:
    a = np.array([1, 0, 1, 1] * 10)
    d = paired_difference(a, a)
    assert d.diff == 0.0 and d.mcnemar_p == 1.0
    assert d.low is not None and d.high is not None and d.low < -0.05 and d.high > 0.05


def test_paired_difference_rejects_unpaired() -> None:
    with pytest.raises(ValueError):
        paired_difference(np.array([1, 0]), np.array([1]))


# ---------------------------------------------------------------- quantiles


def _cdf(n: int, p: float, k: int) -> float:
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k + 1))


def test_binomial_cdf_matches_the_sum() -> None:
    for n, p in ((10, 0.3), (72, 0.95), (200, 0.02)):
        cdf = binomial_cdf(n, p)
        assert [cdf[k] for k in (0, n // 2, n - 1)] == pytest.approx([_cdf(n, p, k) for k in (0, n // 2, n - 1)])
    assert binomial_cdf(5, 0.0).tolist() == [1.0] * 6 and binomial_cdf(5, 1.0).tolist() == [0.0] * 5 + [1.0]


def test_order_statistic_ranks() -> None:
    # the largest of 30 values exceeds the 95th percentile with probability 1 - 0.95^30 = 0.785 only
    assert order_statistic_ranks(30, 0.95)[1] is None
    # 72 values: 1 - 0.95^72 = 0.9751 >= 0.975, so the largest is a 97.5% upper bound; 71 are too few
    assert order_statistic_ranks(72, 0.95)[1] == 72 and order_statistic_ranks(71, 0.95)[1] is None
    # 100 values: P(at most 98 below) = 0.9629 < 0.975 <= P(at most 99 below) = 0.9941: rank 100
    assert order_statistic_ranks(100, 0.95)[1] == 100
    # the median of 20 values: ranks 6 and 15 (P(at most 5 below) = 0.0207, P(at most 14 below) = 0.9793)
    assert order_statistic_ranks(20, 0.5) == (6, 15)
    assert _cdf(20, 0.5, 5) <= 0.025 < _cdf(20, 0.5, 6) and _cdf(20, 0.5, 13) < 0.975 <= _cdf(20, 0.5, 14)


def test_quantile_interval_over_calls() -> None:
    latencies = np.arange(1.0, 101.0)  # 100 calls of 2 items each
    q = quantile_interval(latencies, np.full(100, 2.0), 0.95)
    assert (q.calls, q.effective_calls) == (100, 100)
    assert q.value == pytest.approx(np.percentile(np.repeat(latencies, 2), 95))
    assert q.high == 100.0  # rank 100 (above)
    lower = order_statistic_ranks(100, 0.95)[0]
    assert lower is not None and q.low == float(lower)
    few = quantile_interval(latencies[:30], np.full(30, 3.0), 0.95)
    assert few.high is None and few.value is not None


def test_quantile_bounds_with_calls_of_unequal_size() -> None:
    # 12 calls of 1, 2, 3, 1, 2, 3, ... items, latencies 1..12 s: 24 items, sum of squares 56, so Kish's
    # effective number of calls is floor(576 / 56) = 10
    sizes = np.array([1.0, 2.0, 3.0] * 4)
    assert int(effective_calls(sizes)) == 10
    # the median of 10 values at 90%: P(Bin(10, 0.5) <= 1) = 0.0107 <= 0.05 < P(<= 2) = 0.0547, and
    # P(<= 7) = 0.9453 < 0.95 <= P(<= 8) = 0.9893: ranks 2 and 9 of 10
    assert _cdf(10, 0.5, 1) <= 0.05 < _cdf(10, 0.5, 2) and _cdf(10, 0.5, 7) < 0.95 <= _cdf(10, 0.5, 8)
    assert order_statistic_ranks(10, 0.5, 0.9) == (2, 9)
    # rank r of 10 is the first latency whose share of the items reaches r / 10; cumulative items over
    # 24: 1, 3, 6, 7, 9, 12, 13, 15, 18, 19, 21, 24. Share 0.2 is first reached at 6 / 24 = 0.25 (3 s),
    # share 0.9 at 24 / 24 (12 s); shuffled input gives the same
    order = np.random.default_rng(0).permutation(12)
    low, high = quantile_bounds(np.arange(1.0, 13.0)[order], sizes[order], 0.5, 0.9)
    assert (float(low[0]), float(high[0])) == (3.0, 12.0)


def test_effective_calls_of_unequal_size() -> None:
    # Kish: (sum w)^2 / sum w^2 = 36 / 14 for calls of 1, 2 and 3 items
    assert int(effective_calls(np.array([1.0, 2.0, 3.0]))) == 2
    assert int(effective_calls(np.full(40, 4.0))) == 40


# ---------------------------------------------------------------- resampling


def test_cluster_resample_counts() -> None:
    counts = cluster_resample_counts(7, 50, seed=3)
    assert counts.shape == (51, 7) and (counts[0] == 1).all() and (counts.sum(axis=1) == 7).all()
    assert (cluster_resample_counts(7, 50, seed=3) == counts).all()
    draws = counts @ np.arange(7.0) / 7
    low, high = percentile_bounds(draws)
    assert low <= draws[0] <= high


def test_percentile() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([], 95) is None


def _ratio_by_hand(a: list[float], b: list[float], weights: list[float]) -> tuple[float, float]:
    """log(A / B) of a resample and its linearised standard error, sqrt(n / (n - 1) * sum_i w_i (a_i / A -
    b_i / B)^2), one cluster at a time."""
    big_a = sum(w * x for w, x in zip(weights, a, strict=True))
    big_b = sum(w * x for w, x in zip(weights, b, strict=True))
    spread = sum(w * (x / big_a - y / big_b) ** 2 for w, x, y in zip(weights, a, b, strict=True))
    return math.log(big_a / big_b), math.sqrt(spread * len(a) / (len(a) - 1))


def test_ratio_bounds_by_hand() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]
    # the sample: A = 10, B = 8, r = 1.25; se^2 = 4/3 x ((0.1 - 0.25)^2 + (0.2 - 0.25)^2 + (0.3 - 0.25)^2 +
    # (0.4 - 0.25)^2) = 4/3 x 0.05
    log_r, se = _ratio_by_hand(a, b, [1.0] * 4)
    assert (math.exp(log_r), se) == pytest.approx((1.25, math.sqrt(0.2 / 3)))
    draws = [[1, 1, 1, 1], [2, 0, 1, 1], [0, 2, 1, 1], [1, 1, 2, 0], [1, 1, 0, 2], [2, 1, 1, 0]]
    # each resample's t = (its log ratio - the sample's) / its own se; at level 1 the ends use the
    # smallest and largest t: low = log r - t_max se, high = log r - t_min se
    ts = [(x - log_r) / s for x, s in (_ratio_by_hand(a, b, [float(w) for w in row]) for row in draws[1:])]
    expected = (math.exp(log_r - max(ts) * se), math.exp(log_r - min(ts) * se))
    counts = np.array(draws, dtype=float)
    low, high = ratio_bounds(np.array(a), np.array(b), counts, level=1.0)
    assert (float(low), float(high)) == pytest.approx(expected)
    assert float(low) <= 1.25 <= float(high)
    # a resample that draws one cluster four times has no spread and no t: it is left out, not clamped
    degenerate = ratio_bounds(np.array(a), np.array(b), np.vstack([counts, [4, 0, 0, 0]]), level=1.0)
    assert (float(degenerate[0]), float(degenerate[1])) == pytest.approx(expected)


def test_ratio_bounds_order_statistics() -> None:
    a, b = [1.0, 3.0, 2.0, 5.0, 4.0, 6.0], [2.0, 1.0, 3.0, 2.0, 4.0, 2.0]
    log_r, se = _ratio_by_hand(a, b, [1.0] * 6)
    counts = cluster_resample_counts(6, 19, seed=3)
    ts = sorted((x - log_r) / s for x, s in (_ratio_by_hand(a, b, [float(w) for w in row]) for row in counts[1:]))
    # R = 19 resamples at level 0.8: tail 0.1, k = (19 + 1) x 0.1 = 2, so the 2nd smallest t and the 2nd
    # largest (the 18th of 19), not the interpolated 10th and 90th percentiles
    expected = (math.exp(log_r - ts[17] * se), math.exp(log_r - ts[1] * se))
    low, high = ratio_bounds(np.array(a), np.array(b), counts, level=0.8)
    assert (float(low), float(high)) == pytest.approx(expected)
    assert float(high) != pytest.approx(math.exp(log_r - float(np.percentile(ts, 10)) * se))
    # a resample without a t does not count towards R: the same ends
    degenerate = np.vstack([counts, [6, 0, 0, 0, 0, 0]])
    low, high = ratio_bounds(np.array(a), np.array(b), degenerate, level=0.8)
    assert (float(low), float(high)) == pytest.approx(expected)
    # R = 38: (38 + 1) x 0.025 < 1, so k = 1, the smallest and largest t; the upper end, 7.2, is then
    # beyond the dearest cluster's ratio, 3 / 1, and stops there
    counts = cluster_resample_counts(6, 38, seed=4)
    ts = sorted((x - log_r) / s for x, s in (_ratio_by_hand(a, b, [float(w) for w in row]) for row in counts[1:]))
    low, high = ratio_bounds(np.array(a), np.array(b), counts, level=0.95)
    assert math.exp(log_r - ts[0] * se) == pytest.approx(7.228, abs=1e-3)
    assert (float(low), float(high)) == pytest.approx((math.exp(log_r - ts[-1] * se), 3.0))


def test_ratio_bounds_flat_and_skewed() -> None:
    b = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    counts = cluster_resample_counts(5, 400, seed=2)
    low, high = ratio_bounds(0.6 * b, b, counts)  # every cluster at the same ratio: no spread
    assert (float(low), float(high)) == pytest.approx((0.6, 0.6))
    rng = np.random.default_rng(4)
    a, b = rng.lognormal(0.0, 1.0, size=30), rng.lognormal(0.0, 0.3, size=30)
    low, high = ratio_bounds(a, b, cluster_resample_counts(30, 2000, seed=5))
    assert float(low) < a.sum() / b.sum() < float(high)


def test_ratio_bounds_stay_within_the_clusters_own_ratios() -> None:
    # four calls: resamples that draw nearly one call have a tiny se, and their t would carry the upper
    # end to a cost ratio of about 25 where the dearest call's ratio is 3
    a, b = np.array([1.0, 1.1, 3.0, 0.9]), np.array([1.0, 0.5, 1.0, 1.2])
    low, high = ratio_bounds(a, b, cluster_resample_counts(4, 2000, seed=1))
    assert (float(low), float(high)) == pytest.approx((0.75, 3.0))  # the cheapest and the dearest call
    # a call with no cost in either mode has no ratio and sets no end; with one cost-free single call
    # the upper end is the bootstrap-t's alone
    zero = ratio_bounds(np.append(a, 0.0), np.append(b, 0.0), cluster_resample_counts(5, 2000, seed=1))
    assert float(zero[0]) >= 0.75 and float(zero[1]) <= 3.0
    free = ratio_bounds(np.append(a, 1.0), np.append(b, 0.0), cluster_resample_counts(5, 2000, seed=1))
    assert math.isfinite(float(free[1])) and float(free[1]) > 3.0
    # two calls: every resample with a t has t = 0, which would read [r, r]; there is no interval
    two = ratio_bounds(a[:2], b[:2], cluster_resample_counts(2, 2000, seed=1))
    assert np.isnan(two).all()


# ---------------------------------------------------------------- sums of estimated parts (MOVER)


def test_mover_sum_bounds_by_hand() -> None:
    values, lows, highs = np.array([1.0, 2.0]), np.array([0.0, 1.5]), np.array([3.0, 2.5])
    # distances to the ends: below (1, 0.5), above (2, 0.5)
    flat = np.ones((2, 5))  # parts that do not vary over the resamples are uncorrelated
    low, high = mover_sum_bounds(values, lows, highs, flat)
    assert (float(low), float(high)) == pytest.approx((3 - math.sqrt(1.25), 3 + math.sqrt(4.25)))
    together = np.array([[0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 4.0, 6.0, 8.0]])  # draw 0 is left out
    low, high = mover_sum_bounds(values, lows, highs, together)
    assert (float(low), float(high)) == pytest.approx((3 - 1.5, 3 + 2.5))  # r = 1: the distances add
    apart = together * np.array([[1.0], [-1.0]])
    low, high = mover_sum_bounds(values, lows, highs, apart)
    assert (float(low), float(high)) == pytest.approx((3 - 0.5, 3 + 1.5))  # r = -1: they offset


def test_correlations_skip_unfinished_draws() -> None:
    draws = np.array([[1.0, 2.0, 3.0, np.nan], [2.0, 4.0, 7.0, 1.0], [5.0, 5.0, 5.0, 5.0]])
    r = correlations(draws)
    assert r[0, 1] == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])
    assert r[0, 2] == 0.0 and r[2, 2] == 1.0  # a constant part is uncorrelated with the others
    many = correlations(np.stack([draws, draws]))  # leading axes: several pilots at once
    assert many.shape == (2, 3, 3) and np.allclose(many[1], r)
