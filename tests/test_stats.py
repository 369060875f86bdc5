"""Statistics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roi.stats import items_needed_for_margin, mcnemar_exact, paired_difference, percentile, wilson


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
    d = paired_difference(a, b, seed=1)
    assert d.n == 30
    assert d.a_only == 6 and d.b_only == 3
    assert d.diff == pytest.approx(-0.1)
    assert d.low is not None and d.high is not None
    assert d.low < -0.1 < d.high
    assert d.mcnemar_p == pytest.approx(mcnemar_exact(6, 3))


def test_paired_difference_with_identical_outcomes_is_exactly_zero() -> None:
    a = np.array([1, 0, 1, 1])
    d = paired_difference(a, a)
    assert (d.diff, d.low, d.high, d.mcnemar_p) == (0.0, 0.0, 0.0, 1.0)


def test_paired_difference_rejects_unpaired() -> None:
    with pytest.raises(ValueError):
        paired_difference(np.array([1, 0]), np.array([1]))


def test_percentile_and_sample_size() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([], 95) is None
    assert items_needed_for_margin(0.05) == math.ceil(1.959963984540054**2 * 0.25 / 0.0025)
