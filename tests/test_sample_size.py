"""Items that would settle a gate: hand-computed edges and the 80% promise checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roi.sample_size import (
    normal_items_needed,
    paired_items_needed,
    quantile_calls_needed,
    rate_items_needed,
    wilson_max_count,
    z_power,
)
from roi.stats import Z95, paired_interval, wilson


def test_wilson_max_count_matches_the_interval() -> None:
    for n in (30, 73, 189, 500):
        top = wilson_max_count(n, 0.05, Z95)
        assert top < 0 or (wilson(top, n).high or 1) <= 0.05
        assert (wilson(top + 1, n).high or 0) > 0.05


def test_rate_items_needed_at_zero() -> None:
    # zero of n: Wilson upper z^2 / (n + z^2) <= L from n >= z^2 (1 - L) / L: 73 for 5%, 189 for 2%
    assert rate_items_needed(0, 40, limit=0.05, z=Z95, min_n=30) == 73
    assert rate_items_needed(0, 40, limit=0.02, z=Z95, min_n=30) == 189
    assert rate_items_needed(4, 40, limit=0.05, z=Z95, min_n=30) is None  # 10% measured: never


def test_rate_items_needed_has_the_promised_power() -> None:
    # measured 1 in 100 against 5%: at the n returned the gate passes with at least 80% probability
    n = rate_items_needed(1, 100, limit=0.05, z=Z95, min_n=30)
    assert n is not None
    top = wilson_max_count(n, 0.05, Z95)
    power = sum(math.comb(n, j) * 0.01**j * 0.99 ** (n - j) for j in range(top + 1))
    assert power >= 0.8


def test_quantile_calls_needed() -> None:
    # every call within the limit: the 72nd call is the first 97.5% bound of the p95 that exists
    assert quantile_calls_needed(1.0, q=0.95, level=0.95, min_n=30) == 72
    assert quantile_calls_needed(0.94, q=0.95, level=0.95, min_n=30) is None
    # 99% within: at n calls the bound X(u) is within when at least u calls are: Binomial(n, 0.99) >= u
    n = quantile_calls_needed(0.99, q=0.95, level=0.95, min_n=30)
    assert n is not None and n > 72


def test_normal_items_needed_formula() -> None:
    # saving 40% [30%, 50%] at n = 50 against a 20% minimum: se = 0.1 / 1.96, room 0.2
    needed = normal_items_needed(50, 0.4, 0.3, 0.2, upper=False, z=Z95, min_n=30)
    assert needed == max(30, math.ceil(50 * ((Z95 + z_power()) * (0.1 / Z95) / 0.2) ** 2))
    assert normal_items_needed(50, 0.1, 0.0, 0.2, upper=False, z=Z95, min_n=30) is None  # misses the minimum
    assert normal_items_needed(5, -1.0, -1.0, 0.2, upper=False, z=Z95, min_n=30) is None  # even with no width
    # an upper limit: p95 3 s [.., 4 s] against 5 s, half-width 1 s and room 2 s at 100 calls
    assert normal_items_needed(100, 3.0, 4.0, 5.0, upper=True, z=Z95, min_n=30) == math.ceil(
        100 * ((Z95 + z_power()) / Z95 / 2) ** 2
    )


def test_paired_items_needed_without_discordant_pairs() -> None:
    # every answer right in both modes: the interval is +-z^2 / (n + z^2), within 5% from n >= 19 z^2
    needed = paired_items_needed(31, 0, 0, 0, limit=0.05, z=Z95, min_n=30)
    assert needed[()] == math.ceil(19 * Z95**2) == 73
    assert float(paired_interval(73, 0, 0, 0)[1]) <= 0.05 < float(paired_interval(72, 0, 0, 0)[1])
    # a measured drop at or beyond the limit cannot be settled by more items
    assert np.isnan(paired_items_needed(20, 3, 0, 7, limit=0.05, z=Z95, min_n=30))


def test_paired_items_needed_has_about_the_promised_power() -> None:
    """If the measured table is the truth, a fresh pilot of the returned size passes about 80% of the time."""
    rng = np.random.default_rng(7)
    for cells in ((50, 6, 4, 40), (80, 3, 2, 15), (90, 2, 0, 8)):
        n = int(paired_items_needed(*cells, limit=0.05, z=Z95, min_n=30)[()])
        drawn = rng.multinomial(n, np.array(cells) / sum(cells), size=4000)
        upper = paired_interval(drawn[:, 0], drawn[:, 1], drawn[:, 2], drawn[:, 3])[1]
        assert np.mean(upper <= 0.05) == pytest.approx(0.8, abs=0.06)
