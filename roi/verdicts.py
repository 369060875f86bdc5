"""Judging figures against limits, element by element over numpy arrays: the rules of roi/decision.py
(see its docstring) as pure functions, so benchmarks/calibration.py runs them on thousands of simulated
pilots at once and measures how often they pass, fail and cover the truth."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from roi.sample_size import paired_items_needed
from roi.stats import ArrayLike, mcnemar_exact, paired_interval, wilson_bounds

SIGNIFICANCE = 0.05
_EPS = 1e-12


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    MORE_DATA = "more_data"
    UNKNOWN = "unknown"


def verdicts(
    value: ArrayLike, best: ArrayLike, worst: ArrayLike, limit: float, *, upper: bool, n: ArrayLike, min_n: int
) -> np.ndarray:
    """The status of each figure against `limit` by the rules in roi/decision.py's docstring. NaN marks an
    unknown figure (value) or an end that no data bounds yet (best, worst)."""
    value, best, worst, n = (np.asarray(x, dtype=float) for x in (value, best, worst, n))
    with np.errstate(invalid="ignore"):
        beyond_worst = worst > limit + _EPS if upper else worst < limit - _EPS
        beyond_best = best > limit + _EPS if upper else best < limit - _EPS
    out = np.where(beyond_worst | np.isnan(worst) | (n < min_n), Status.MORE_DATA.value, Status.PASS.value)
    out = np.where(beyond_best, Status.FAIL.value, out)
    out = np.where(np.isnan(value), Status.UNKNOWN.value, out)
    return np.where(n == 0, Status.MORE_DATA.value, out)


COST_PASS_FACTOR = 2


def cost_verdicts(
    value: ArrayLike, best: ArrayLike, worst: ArrayLike, limit: float, *, n: ArrayLike, min_n: int
) -> np.ndarray:
    """The cost-saving gate (a minimum) on its bootstrap-t interval over n clusters, with two small-sample
    rules. It passes only from `COST_PASS_FACTOR` x `min_n` calls: the bootstrap-t's ends are accurate to
    order 1/n, and at 30 calls a saving exactly at the limit passed clearly more often than the 2.5%
    promised (BENCHMARKS.md, "Calibration"). It fails only from `min_n` calls: a bootstrap over a
    handful of calls is too narrow to fail on (one call: [x, x])."""
    status = verdicts(value, best, worst, limit, upper=False, n=n, min_n=COST_PASS_FACTOR * min_n)
    few = np.asarray(n, dtype=float) < min_n
    return np.where((status == Status.FAIL.value) & few, Status.MORE_DATA.value, status)


def judge_cost(
    value: float | None, best: float | None, worst: float | None, limit: float, *, n: int, min_n: int
) -> Status:
    return Status(str(cost_verdicts(_nan(value), _nan(best), _nan(worst), limit, n=n, min_n=min_n)))


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def judge(
    value: float | None, best: float | None, worst: float | None, limit: float, *, upper: bool, n: int, min_n: int
) -> Status:
    return Status(str(verdicts(_nan(value), _nan(best), _nan(worst), limit, upper=upper, n=n, min_n=min_n)))


@dataclass(frozen=True)
class AccuracyVerdicts:
    """The accuracy-drop gate (single minus mixed) on paired tables, element by element."""

    drop: np.ndarray
    best: np.ndarray
    worst: np.ndarray
    status: np.ndarray
    needed: np.ndarray  # NaN: no projection


def accuracy_verdicts(
    both: ArrayLike,
    single_only: ArrayLike,
    mixed_only: ArrayLike,
    neither: ArrayLike,
    *,
    limit: float,
    z: float,
    min_n: int,
) -> AccuracyVerdicts:
    """Newcombe's paired interval of the drop at normal quantile `z`, judged on its upper end; items of
    failed calls are already counted wrong in the tables."""
    e, f, g, h = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (both, single_only, mixed_only, neither))
    n = e + f + g + h
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = (f - g) / n
    best, worst = paired_interval(e, f, g, h, z)
    status = verdicts(drop, best, worst, limit, upper=True, n=n, min_n=min_n)
    for i in np.flatnonzero((status == Status.FAIL.value) & (n < min_n)):
        # A score interval over a handful of items is optimistic; below the minimum, only a drop the
        # exact McNemar test also sees counts as a failure.
        if mcnemar_exact(int(f.flat[i]), int(g.flat[i])) >= SIGNIFICANCE:
            status.flat[i] = Status.MORE_DATA.value
    more = status == Status.MORE_DATA.value
    needed = np.full(n.shape, np.nan)
    if more.any():
        needed[more] = paired_items_needed(e[more], f[more], g[more], h[more], limit=limit, z=z, min_n=min_n)
    return AccuracyVerdicts(drop, best, worst, status, needed)


def rate_verdicts(
    k: ArrayLike, n: ArrayLike, *, limit: float, z: float, min_n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A rate's value, Wilson interval at normal quantile `z` and status against an upper `limit`."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = k / n
    low, high = wilson_bounds(k, n, z)
    return value, low, high, verdicts(value, low, high, limit, upper=True, n=n, min_n=min_n)
