"""How many items (or calls) would settle a gate: the n at which the gate would pass with 80% probability
if what the pilot measured were the truth. Each gate's interval gets its own method, named here and in
docs/report.md; benchmarks/calibration.py checks the promise by simulation.

- Paired accuracy drop (Newcombe's interval): a formula. The gate passes when the measured drop is small
  enough, so it passes with 80% probability at the n where the interval computed on the table whose drop
  lies 0.84 standard errors (the 80th percentile of a normal) above the measured one just reaches the
  limit. The table keeps the measured cells, one standard error of the drop being
  sqrt((p_f + p_g - drop^2) / n) with p_f, p_g the shares of items right in one mode only.
- Rates (Wilson upper end) and p95 latency (order statistics): exact binomial probabilities at the
  measured rate, or at the measured share of calls within the limit.
- Bootstrap figures (the cost saving): the normal approximation, the interval's half-width on the
  judged side shrinking as 1 / sqrt(n).

Every answer is at least `min_n`; None means that more data cannot be expected to settle it (the
measured value is beyond the limit, or more than MAX_ITEMS would be needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np

from roi.stats import ArrayLike, binomial_cdf, order_statistic_ranks, paired_interval

POWER = 0.8
MAX_ITEMS = 1_000_000
_BISECTIONS = 40


def z_power(power: float = POWER) -> float:
    return NormalDist().inv_cdf(power)


# ---------------------------------------------------------------- paired accuracy drop


def _shifted_upper(cells: tuple[np.ndarray, ...], n: np.ndarray, z: float, shift_z: float) -> np.ndarray:
    """Upper end of the interval of p1 - p2 at `n` items, on the measured table made worse by `shift_z`
    standard errors: the extra share moves from `both` to `first_only` (then from `second_only` to
    `neither` if `both` runs out)."""
    e, f, g, h = cells
    d = f - g
    shift = shift_z * np.sqrt(np.maximum(f + g - d * d, 0.0) / n)
    moved = np.minimum(shift, e)
    rest = np.minimum(shift - moved, g)
    e2, f2, g2, h2 = e - moved, f + moved, g - rest, h + rest
    return paired_interval(n * e2, n * f2, n * g2, n * h2, z)[1]


def paired_items_needed(
    both: ArrayLike,
    first_only: ArrayLike,
    second_only: ArrayLike,
    neither: ArrayLike,
    *,
    limit: float,
    z: float,
    min_n: int,
    power: float = POWER,
) -> np.ndarray:
    """Items at which the upper end of the paired interval of p1 - p2 (e.g. single minus mixed: the
    accuracy drop) is within `limit` with probability `power`, if the measured table is the truth
    (formula in the module docstring). NaN where no n up to MAX_ITEMS would do."""
    counts = [np.asarray(x, dtype=float) for x in (both, first_only, second_only, neither)]
    total = counts[0] + counts[1] + counts[2] + counts[3]
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = tuple(c / total for c in counts)
    shift_z = z_power(power)
    lo = np.full(total.shape, float(max(min_n, 1)))
    hi = np.full(total.shape, float(MAX_ITEMS))
    possible = (total > 0) & (_shifted_upper(cells, hi, z, shift_z) <= limit)
    for _ in range(_BISECTIONS):
        mid = np.floor((lo + hi) / 2)
        ok = _shifted_upper(cells, mid, z, shift_z) <= limit
        lo, hi = np.where(ok, lo, mid), np.where(ok, mid, hi)
    needed = np.where(_shifted_upper(cells, lo, z, shift_z) <= limit, lo, hi)
    return np.where(possible, needed, np.nan)


# ---------------------------------------------------------------- searching n


def smallest_n(passes: Callable[[int], bool], start: int) -> int | None:
    """The smallest n >= start for which `passes(n)` holds, assuming it keeps holding beyond (doubling,
    then bisection); None beyond MAX_ITEMS."""
    hi = max(start, 1)
    while not passes(hi):
        if hi >= MAX_ITEMS:
            return None
        hi = min(MAX_ITEMS, hi * 2)
    lo = max(start, hi // 2)
    if passes(lo):
        return lo
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    return hi


# ---------------------------------------------------------------- rates and quantiles


def wilson_max_count(n: int, limit: float, z: float) -> int:
    """The largest count k whose Wilson upper end at n is within `limit` (-1 if none): the Wilson
    interval inverts the score test, so its upper end is at most `limit` exactly when
    k <= n limit - z sqrt(n limit (1 - limit))."""
    return math.floor(n * limit - z * math.sqrt(n * limit * (1 - limit)) + 1e-9)


def rate_items_needed(k: int, n: int, *, limit: float, z: float, min_n: int, power: float = POWER) -> int | None:
    """Items at which a rate's Wilson upper end is within `limit` with probability `power` if the
    measured rate k / n is the truth (exact binomial)."""
    rate = k / n if n else 0.0
    if rate >= limit:
        return None

    def passes(m: int) -> bool:
        top = wilson_max_count(m, limit, z)
        return top >= 0 and float(binomial_cdf(m, rate)[min(top, m)]) >= power

    return smallest_n(passes, min_n)


def quantile_calls_needed(
    share_within: float, *, q: float, level: float, min_n: int, power: float = POWER
) -> int | None:
    """Calls at which the order-statistic upper bound of the q-quantile is within the limit with
    probability `power`, if `share_within` (the measured item-weighted share of calls within the
    limit) is the truth: the bound X(u) is within the limit when at least u calls are (exact binomial)."""
    if share_within <= q:
        return None

    def passes(m: int) -> bool:
        upper = order_statistic_ranks(m, q, level)[1]
        return upper is not None and 1 - float(binomial_cdf(m, share_within)[upper - 1]) >= power

    return smallest_n(passes, min_n)


def normal_items_needed(
    n: int, value: float, worst: float, limit: float, *, upper: bool, z: float, min_n: int, power: float = POWER
) -> int | None:
    """Items at which a bootstrap interval's worst end would reach `limit` (an upper limit, or a minimum)
    with probability `power` if `value` is the truth and the half-width |worst - value| shrinks as
    1 / sqrt(n)."""
    room, half = (limit - value if upper else value - limit), abs(worst - value)
    if room <= 0:
        return None  # the estimate itself is at or beyond the limit
    needed = n * ((z + z_power(power)) * half / z / room) ** 2
    return None if needed > MAX_ITEMS else max(min_n, math.ceil(needed))
