"""Money: what each mode costs per item and per month, what its errors cost, and what a plan that serves
some tasks mixed (the rest single) gains over serving every task single.

Every figure carries a 95% interval and rests on one bootstrap over the run's independent units: a
*cluster* is one mixed call together with the single calls of its items. Item i of every task of a
group shares mixed call i, so its tasks' figures move together; each resample draws clusters with
replacement and recomputes every figure of both modes from the same draw, so a difference is not
inflated by treating the modes (or the tasks) as independent. Costs are continuous, and their intervals
are the bootstrap's (the saving's a bootstrap-t, roi.stats.ratio_bounds). Error rates are 0/1 outcomes,
whose bootstrap collapses to a point when every answer agrees: an error rate takes its Wilson interval,
an accuracy change its Newcombe paired interval, and a sum of such parts (monthly error cost, net
benefit, hence payback and ROI) combines the parts' intervals by MOVER (roi.stats.mover_sum_bounds),
with their correlations measured on the cluster resamples. Monthly figures weight tasks by their
`monthly_volume`. Unknown cost (a model with no price) stays None all the way up: the compute cost, the
saving, the net benefit, payback and ROI are then unknown, never 0.

Pairs are the items answered in single mode and asked in the other; an item whose single call failed
has nothing to compare with and is left out (the failed-calls gate judges those failures), while an
item of a failed mixed call counts as wrong, as it would in production. Cost per item is the item's call
cost divided by the items that call answered (see roi/metrics.py), averaged over the items whose call
did not fail. Error cost is error rate x `cost_per_error_usd` x volume.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from roi.pilot import Pilot
from roi.stats import (
    LEVEL,
    Z95,
    cluster_resample_counts,
    mover_sum_bounds,
    paired_interval,
    percentile_bounds,
    ratio_bounds,
    wilson_bounds,
)

RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval; all None when it cannot be computed."""

    value: float | None
    low: float | None
    high: float | None


UNKNOWN = Estimate(None, None, None)


@dataclass(frozen=True)
class TaskPairs:
    """One task's items answered in single mode and asked in the other, aligned by item id (cost NaN when
    unknown). `clusters` names each item's mixed call (None: item i of every task shared call i);
    `failed_mixed` marks items of failed mixed calls (counted wrong, left out of cost)."""

    task: str
    item_ids: list[str]
    correct_single: np.ndarray
    correct_mixed: np.ndarray
    cost_single: np.ndarray
    cost_mixed: np.ndarray
    clusters: list[str] | None = None
    failed_mixed: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.item_ids)

    def cluster_keys(self) -> list[str]:
        return self.clusters if self.clusters is not None else [f"#{i}" for i in range(self.n)]


@dataclass(frozen=True)
class TaskEconomics:
    task: str
    n: int
    monthly_volume: int | None  # None: not set in the pilot (monthly figures unknown)
    cost_per_error_usd: float
    cost_per_item_single_usd: Estimate
    cost_per_item_mixed_usd: Estimate
    error_rate_single: Estimate
    error_rate_mixed: Estimate
    monthly_compute_single_usd: Estimate
    monthly_compute_mixed_usd: Estimate
    monthly_error_single_usd: Estimate
    monthly_error_mixed_usd: Estimate


@dataclass(frozen=True)
class PlanEconomics:
    """Serving `mixed_tasks` in mixed calls (the other tasks single) against serving every task single."""

    model: str
    mixed_tasks: list[str]
    cost_known: bool
    investment_usd: float
    horizon_months: int
    cost_per_item_single_usd: Estimate  # volume-weighted over tasks
    cost_per_item_plan_usd: Estimate
    monthly_compute_single_usd: Estimate
    monthly_compute_plan_usd: Estimate
    monthly_error_single_usd: Estimate
    monthly_error_plan_usd: Estimate
    cost_saving: Estimate  # 1 - compute cost of the plan / compute cost all single (a fraction)
    monthly_compute_saving_usd: Estimate  # compute cost all single minus the plan's
    net_monthly_benefit_usd: Estimate  # (compute + error cost) all single minus the plan's
    payback_months: Estimate  # None ends: the benefit is not positive there ("never")
    roi: Estimate  # (net benefit x horizon - investment) / investment; None without an investment
    clusters: int = 0  # independent units resampled: mixed calls with the single calls of their items
    calls: int = 0  # the plan's own mixed calls (of its mixed tasks; all clusters when none): the cost gate's n
    pairing: list[Pairing] = field(default_factory=list)  # the plan's mixed calls a month, per group
    cost_issue: str | None = None  # why the cost per item is unknown: no_pairs | no_cost | zero_cost
    cost_spread: float | None = None  # how uneven the calls' costs are (see `cost_spread`)
    volume_issue: str | None = None  # why monthly figures are unknown: missing_volume | zero_volume
    tasks_without_pairs: list[str] = field(default_factory=list)
    tasks_without_volume: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Pairing:
    """One group of a plan's mixed calls in a month. A call carries one item of every task of the group,
    so there are as many calls as the group's smallest monthly volume; every other item of its tasks is
    served by a single-task call (priced as measured)."""

    tasks: list[str]
    calls_per_month: int
    single_per_month: dict[str, int]  # each task's items a month left to single calls


def pairings(pilot: Pilot, mixed_tasks: Sequence[str]) -> list[Pairing]:
    """The plan's mixed calls a month, group by group (roi.pilot.MixedMode.groups); none when a task of
    the plan has no monthly_volume (the share cannot be known)."""
    volume = {t.name: t.monthly_volume for t in pilot.tasks}
    names = [t.name for t in pilot.tasks if t.name in mixed_tasks]
    if len(names) < 2 or any(volume[t] is None for t in names):
        return []
    out = []
    for group in pilot.modes.mixed.groups(names):
        calls = min(int(volume[t] or 0) for t in group)
        out.append(Pairing(group, calls, {t: int(volume[t] or 0) - calls for t in group}))
    return out


def mixed_shares(pilot: Pilot, mixed_tasks: Sequence[str]) -> dict[str, float]:
    """Share of each task's monthly volume that the plan's mixed calls carry (`pairings`); without
    volumes, or with every plan task's volume 0, every item of a plan task is taken to ride in a full
    mixed call."""
    shares = {t.name: 1.0 if t.name in mixed_tasks else 0.0 for t in pilot.tasks}
    volume = {t.name: t.monthly_volume for t in pilot.tasks}
    if not any(volume[t] for t in mixed_tasks):  # nothing to pair: equal weights, as `_weights` takes them
        return shares
    for pair in pairings(pilot, mixed_tasks):
        for t in pair.tasks:
            shares[t] = pair.calls_per_month / (volume[t] or 1)  # no calls when a volume is 0
    return shares


def task_pairs(items: pd.DataFrame, model: str, tasks: Sequence[str], mode: str = "mixed") -> dict[str, TaskPairs]:
    """Items of `model` answered in single mode and asked in `mode` (mixed, or the measured plan's calls),
    per task, aligned by item id; the second mode's figures are the `*_mixed` arrays. An item whose single
    call failed is left out: counting it wrong would credit mixing with every single failure."""
    own = items[items["model"] == model].copy()
    own["cost_item"] = own["cost_usd"] / own["n_items"]
    own["failed"] = own["error"].notna() if "error" in own else False
    keep = ["task", "item_id", "correct", "cost_item", "failed", "call_id"]
    single = own[(own["mode"] == "single") & ~own["failed"]][keep]
    mixed = own[own["mode"] == mode][keep]
    both = single.merge(mixed, on=["task", "item_id"], suffixes=("_single", "_mixed")).sort_values(["task", "item_id"])
    pairs = {}
    for task in tasks:
        rows = both[both["task"] == task]
        pairs[task] = TaskPairs(
            task=task,
            item_ids=[str(i) for i in rows["item_id"]],
            correct_single=rows["correct_single"].to_numpy(dtype=float),
            correct_mixed=rows["correct_mixed"].to_numpy(dtype=float),
            cost_single=rows["cost_item_single"].to_numpy(dtype=float),
            cost_mixed=rows["cost_item_mixed"].to_numpy(dtype=float),
            clusters=[str(c) for c in rows["call_id_mixed"]],
            failed_mixed=rows["failed_mixed"].to_numpy(dtype=bool),
        )
    return pairs


def plan_pairs(
    items: pd.DataFrame, model: str, tasks: Sequence[str], group: Sequence[str]
) -> dict[str, TaskPairs] | None:
    """The pairs a plan grouping `group` is priced from when its measured plan ran (roi/measured_plan.py):
    the group's tasks against their `plan` calls, the others as in `task_pairs`. None when the plan was
    not measured on every item of the group's tasks (e.g. `--max-cost` stopped it): a plan cut short is
    not priced as if it were complete; the grouping is then priced from the pilot's mixed calls."""
    measured = task_pairs(items, model, group, mode="plan")
    paired = task_pairs(items, model, tasks)
    if len(group) < 2 or any(measured[t].n == 0 or measured[t].n < paired[t].n for t in group):
        return None
    return paired | measured


# ---------------------------------------------------------------- cluster bootstrap


@dataclass(frozen=True)
class ClusterSums:
    """One task's sums over each cluster (last axis; leading axes may stack several pilots): items,
    correct answers of each mode and of both, cost of each mode, and the items whose mixed call answered
    (mixed cost is averaged over those; every single item of a pair answered)."""

    items: np.ndarray
    correct_single: np.ndarray
    correct_mixed: np.ndarray
    correct_both: np.ndarray
    answered_mixed: np.ndarray
    cost_single: np.ndarray
    cost_mixed: np.ndarray

    def paired_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The sample's paired table: items right in both modes, in single only, in mixed only, in neither."""
        both, single, mixed, n = (x.sum(axis=-1) for x in (self.correct_both, self.correct_single,
                                                            self.correct_mixed, self.items))  # fmt: skip
        return both, single - both, mixed - both, n - single - mixed + both


def cluster_sums(pairs: dict[str, TaskPairs]) -> tuple[dict[str, ClusterSums], int]:
    """Every task's sums per cluster, the clusters numbered across tasks (a cluster holds one item of each
    task of its mixed call)."""
    index: dict[str, int] = {}
    for p in pairs.values():
        for key in p.cluster_keys():
            index.setdefault(key, len(index))
    out = {}
    for task, p in pairs.items():
        where = np.array([index[k] for k in p.cluster_keys()], dtype=int)
        ok_m = ~p.failed_mixed if p.failed_mixed is not None else np.ones(p.n, dtype=bool)

        def total(values: np.ndarray, where: np.ndarray = where) -> np.ndarray:
            return np.bincount(where, weights=np.asarray(values, dtype=float), minlength=len(index))

        out[task] = ClusterSums(
            items=total(np.ones(p.n)),
            correct_single=total(p.correct_single),
            correct_mixed=total(p.correct_mixed),
            correct_both=total(p.correct_single * p.correct_mixed),
            answered_mixed=total(ok_m),
            cost_single=total(p.cost_single),
            cost_mixed=total(np.where(ok_m, p.cost_mixed, 0.0)),
        )
    return out, len(index)


@dataclass(frozen=True)
class Draws:
    """Per task, means over the sample (index 0 of the last axis) and over each bootstrap resample."""

    acc_single: dict[str, np.ndarray]
    acc_mixed: dict[str, np.ndarray]
    cost_single: dict[str, np.ndarray]
    cost_mixed: dict[str, np.ndarray]


def _ratio(counts: np.ndarray, sums: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray((sums @ counts.T) / (sizes @ counts.T))


def task_means(sums: dict[str, ClusterSums], counts: np.ndarray) -> Draws:
    """Accuracy and cost per item of each task and mode, for the sample and every row of cluster `counts`
    (see roi.stats.cluster_resample_counts). NaN where a resample holds no item of the task."""
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in ("as", "am", "cs", "cm")}
    for task, s in sums.items():
        out["as"][task] = _ratio(counts, s.correct_single, s.items)
        out["am"][task] = _ratio(counts, s.correct_mixed, s.items)
        out["cs"][task] = _ratio(counts, s.cost_single, s.items)
        out["cm"][task] = _ratio(counts, s.cost_mixed, s.answered_mixed)
    return Draws(out["as"], out["am"], out["cs"], out["cm"])


@dataclass(frozen=True)
class Resampled:
    """A run's cluster sums, the cluster draws and the task means they give."""

    sums: dict[str, ClusterSums]
    counts: np.ndarray
    means: Draws

    @property
    def clusters(self) -> int:
        return int(self.counts.shape[-1])


def resample(pairs: dict[str, TaskPairs], seed: int, resamples: int) -> Resampled:
    sums, n_clusters = cluster_sums(pairs)
    counts = cluster_resample_counts(n_clusters, resamples, seed)
    return Resampled(sums, counts, task_means(sums, counts))


def cluster_costs(sums: ClusterSums) -> tuple[np.ndarray, np.ndarray]:
    """A task's single and mixed cost per cluster, each scaled so that its mean over clusters is the task's
    cost per item (the cost sums over the items whose call answered)."""
    n = sums.items.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        single = sums.cost_single * n / sums.items.sum(axis=-1, keepdims=True)
        mixed = sums.cost_mixed * n / sums.answered_mixed.sum(axis=-1, keepdims=True)
    return single, mixed


def saving_bounds(
    pilot: Pilot, single: dict[str, np.ndarray], plan: dict[str, np.ndarray], counts: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Interval of a plan's compute saving, 1 - (cost per item of the plan) / (cost per item all single),
    from each task's cost per cluster under either (see `cluster_costs`), weighted by volume: the
    bootstrap-t of roi.stats.ratio_bounds on the two volume-weighted totals over clusters."""
    weights = _weights(pilot, [t.name for t in pilot.tasks])
    total = sum(weights.values())

    def weighted(costs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(sum(weights[t] / total * c for t, c in costs.items()))

    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = ratio_bounds(weighted(plan), weighted(single), counts, level)
    return 1 - high, 1 - low


SPREAD_PERCENTILES = (10.0, 90.0)


def cost_spread(sums: dict[str, ClusterSums]) -> float | None:
    """How uneven the calls' costs are: within each task and mode, the 90th over the 10th percentile of
    the cost per item over the calls that answered (one sample: clusters on a 1-D last axis), the largest
    of these. The saving's bootstrap-t is less accurate the more uneven the costs (BENCHMARKS.md,
    "Calibration"), so the report names a large spread. None when a cost is unknown, or when no task and
    mode has two answered calls with a 10th percentile above $0."""
    spreads = []
    for s in sums.values():
        for cost, items in ((s.cost_single, s.items), (s.cost_mixed, s.answered_mixed)):
            answered = items > 0
            per_item = cost[answered] / items[answered]
            if not np.isfinite(per_item).all():
                return None
            if per_item.size < 2:
                continue
            low, high = np.percentile(per_item, SPREAD_PERCENTILES)
            if low > 0:
                spreads.append(float(high / low))
    return max(spreads, default=None)


def _estimate(draws: np.ndarray | None) -> Estimate:
    """The sample's figure (draw 0) with the percentile interval of the resamples that hold every task."""
    if draws is None or not np.isfinite(draws[0]):
        return UNKNOWN
    rest = draws[1:][np.isfinite(draws[1:])]
    if rest.size == 0:
        return Estimate(float(draws[0]), None, None)
    low, high = percentile_bounds(np.concatenate([draws[:1], rest]), LEVEL)
    return Estimate(float(draws[0]), float(low), float(high))


def _weights(pilot: Pilot, tasks: Sequence[str]) -> dict[str, float]:
    """Monthly volumes, or equal weights when a task has none or every volume is 0."""
    volumes = {t.name: t.monthly_volume for t in pilot.tasks if t.name in tasks}
    if any(v is None for v in volumes.values()) or not any(volumes.values()):
        return dict.fromkeys(volumes, 1.0)
    return {t: float(v or 0) for t, v in volumes.items()}


def _volume(monthly_volume: int | None) -> float:
    """A task's monthly volume for arithmetic: NaN when it is not set, so what it multiplies is unknown."""
    return float("nan") if monthly_volume is None else float(monthly_volume)


def task_economics(
    pilot: Pilot, pairs: dict[str, TaskPairs], *, seed: int, resamples: int = RESAMPLES
) -> list[TaskEconomics]:
    """Per task: cost per item and error rate of each mode, and what they come to per month."""
    r = resample(pairs, seed, resamples)
    d = r.means
    rows = []
    for spec in pilot.tasks:
        t = spec.name
        volume, per_error = _volume(spec.monthly_volume), spec.cost_per_error_usd
        errors = {mode: error_part(r.sums[t], d, t, mode) for mode in ("single", "mixed")}
        rows.append(
            TaskEconomics(
                task=t,
                n=pairs[t].n,
                monthly_volume=spec.monthly_volume,
                cost_per_error_usd=per_error,
                cost_per_item_single_usd=_estimate(d.cost_single[t]),
                cost_per_item_mixed_usd=_estimate(d.cost_mixed[t]),
                error_rate_single=errors["single"].estimate(),
                error_rate_mixed=errors["mixed"].estimate(),
                monthly_compute_single_usd=_estimate(volume * d.cost_single[t]),
                monthly_compute_mixed_usd=_estimate(volume * d.cost_mixed[t]),
                monthly_error_single_usd=errors["single"].scaled(volume * per_error).estimate(),
                monthly_error_mixed_usd=errors["mixed"].scaled(volume * per_error).estimate(),
            )
        )
    return rows


# ---------------------------------------------------------------- sums of parts (MOVER)


@dataclass(frozen=True)
class Part:
    """One term of a money figure that is a sum over tasks: its value, its 95% interval and its draws
    over the cluster resamples (last axis; draw 0 is the sample's), which give the terms' correlations."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    draws: np.ndarray

    def scaled(self, factor: float) -> Part:
        ends = (self.low * factor, self.high * factor)
        low, high = (ends[1], ends[0]) if factor < 0 else ends
        return Part(self.value * factor, low, high, self.draws * factor)

    def estimate(self) -> Estimate:
        value, low, high = (float(np.asarray(x).flat[0]) for x in (self.value, self.low, self.high))
        return Estimate(value, low, high) if np.isfinite(value) else UNKNOWN


def error_part(sums: ClusterSums, d: Draws, task: str, mode: str) -> Part:
    """A task's error rate in `mode` (single or mixed) with its Wilson interval (Wilson 1927)."""
    n = sums.items.sum(axis=-1)
    right = (sums.correct_single if mode == "single" else sums.correct_mixed).sum(axis=-1)
    low, high = wilson_bounds(n - right, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (n - right) / n
    draws = 1 - (d.acc_single if mode == "single" else d.acc_mixed)[task]
    return Part(np.asarray(value), low, high, draws)


def accuracy_change_part(sums: ClusterSums, d: Draws, task: str) -> Part:
    """A task's accuracy mixed minus single on the same items, with Newcombe's paired interval
    (roi.stats.paired_interval): the error rate it saves by mixing."""
    both, single_only, mixed_only, neither = sums.paired_table()
    drop_low, drop_high = paired_interval(both, single_only, mixed_only, neither, Z95)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (mixed_only - single_only) / (both + single_only + mixed_only + neither)
    return Part(np.asarray(value), -drop_high, -drop_low, d.acc_mixed[task] - d.acc_single[task])


def bootstrap_part(draws: np.ndarray) -> Part:
    """A continuous figure (a cost) with its percentile interval over the resamples that hold it."""
    rest = np.where(np.isfinite(draws[..., 1:]), draws[..., 1:], np.nan)
    tail = (1 - LEVEL) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no finite resample: NaN ends
        low, high = np.nanpercentile(rest, [tail, 100 - tail], axis=-1)
    return Part(np.asarray(draws[..., 0]), low, high, draws)


def sum_bounds(parts: Sequence[Part]) -> tuple[np.ndarray, np.ndarray]:
    """The interval of the sum of `parts`, by MOVER (roi.stats.mover_sum_bounds)."""
    if not parts:
        return np.asarray(0.0), np.asarray(0.0)
    stack = [np.stack(np.broadcast_arrays(*(getattr(p, k) for p in parts)), axis=-1) for k in ("value", "low", "high")]
    draws = np.stack(np.broadcast_arrays(*(p.draws for p in parts)), axis=-2)
    return mover_sum_bounds(stack[0], stack[1], stack[2], draws)


@dataclass(frozen=True)
class MoneyBounds:
    """Intervals of a plan's monthly error cost (all single, the plan) and net monthly benefit."""

    error_single: tuple[np.ndarray, np.ndarray]
    error_plan: tuple[np.ndarray, np.ndarray]
    net: tuple[np.ndarray, np.ndarray]


def money_bounds(
    pilot: Pilot, sums: dict[str, ClusterSums], d: Draws, shares: dict[str, float], compute_saving: np.ndarray
) -> MoneyBounds:
    """Error cost and net benefit of a plan serving `shares` of each task's volume mixed, as sums of
    parts: per task its error rates (Wilson) and the accuracy mixing changes (Newcombe), scaled by
    volume x `cost_per_error_usd`, and the compute saving (`compute_saving`, its draws: bootstrap)."""
    single, plan, net = [], [], [bootstrap_part(compute_saving)]
    for spec in pilot.tasks:
        t, share = spec.name, shares[spec.name]
        weight = _volume(spec.monthly_volume) * spec.cost_per_error_usd
        single.append(error_part(sums[t], d, t, "single").scaled(weight))
        if share < 1:
            plan.append(error_part(sums[t], d, t, "single").scaled(weight * (1 - share)))
        if share > 0:
            plan.append(error_part(sums[t], d, t, "mixed").scaled(weight * share))
            net.append(accuracy_change_part(sums[t], d, t).scaled(weight * share))
    return MoneyBounds(_cost_bounds(single), _cost_bounds(plan), sum_bounds(net))


def _cost_bounds(parts: list[Part]) -> tuple[np.ndarray, np.ndarray]:
    """A sum of error costs: never below 0, where rounding in the sum of parts could leave it."""
    low, high = sum_bounds(parts)
    return np.maximum(low, 0.0), high


@dataclass(frozen=True)
class PlanFigures:
    """A plan's figures for the sample and every resample (last axis), from `plan_figures`."""

    per_item_single: np.ndarray
    per_item_plan: np.ndarray
    compute_single: np.ndarray
    compute_plan: np.ndarray
    error_single: np.ndarray
    error_plan: np.ndarray
    saving: np.ndarray = field(repr=False)
    net: np.ndarray = field(repr=False)


def mixing(d: Draws, mixed_tasks: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Cost and accuracy per task of serving `mixed_tasks` mixed and the rest single."""
    cost = {t: d.cost_mixed[t] if t in mixed_tasks else d.cost_single[t] for t in d.cost_single}
    acc = {t: d.acc_mixed[t] if t in mixed_tasks else d.acc_single[t] for t in d.acc_single}
    return cost, acc


def plan_figures(
    pilot: Pilot, d: Draws, cost_plan: dict[str, np.ndarray], acc_plan: dict[str, np.ndarray]
) -> PlanFigures:
    """A plan (each task's cost and accuracy per item under it) against all single, element by element
    over the draws (any leading axes too, so the calibration benchmark prices thousands of pilots at once)."""
    tasks = [t.name for t in pilot.tasks]
    volume = {t.name: _volume(t.monthly_volume) for t in pilot.tasks}
    per_error = {t.name: t.cost_per_error_usd for t in pilot.tasks}
    weights = _weights(pilot, tasks)
    total_weight = sum(weights.values())
    per_item_single = np.asarray(sum(weights[t] * d.cost_single[t] for t in tasks)) / total_weight
    per_item_plan = np.asarray(sum(weights[t] * cost_plan[t] for t in tasks)) / total_weight
    compute_single = np.asarray(sum(volume[t] * d.cost_single[t] for t in tasks))
    compute_plan = np.asarray(sum(volume[t] * cost_plan[t] for t in tasks))
    error_single = np.asarray(sum(volume[t] * per_error[t] * (1 - d.acc_single[t]) for t in tasks))
    error_plan = np.asarray(sum(volume[t] * per_error[t] * (1 - acc_plan[t]) for t in tasks))
    with np.errstate(divide="ignore", invalid="ignore"):
        saving = np.where(per_item_single > 0, 1 - per_item_plan / per_item_single, np.nan)
    net = compute_single + error_single - compute_plan - error_plan
    return PlanFigures(
        per_item_single, per_item_plan, compute_single, compute_plan, error_single, error_plan, saving, net
    )


def plan_economics(
    pilot: Pilot,
    model: str,
    pairs: dict[str, TaskPairs],
    mixed_tasks: Sequence[str],
    *,
    seed: int,
    resamples: int = RESAMPLES,
) -> PlanEconomics:
    """Economics of serving `mixed_tasks` mixed, as far as their volumes pair up (`pairings`; the
    leftovers and the other tasks single), against all single (same resamples)."""
    shares = mixed_shares(pilot, mixed_tasks)
    serving = {t: TaskServing(mixed_share=shares[t]) for t in pairs}
    plan = serving_economics(pilot, model, pairs, serving, seed=seed, resamples=resamples)
    return replace(plan, pairing=pairings(pilot, mixed_tasks))


@dataclass(frozen=True)
class TaskServing:
    """How an option serves one task: the share of its volume answered in mixed calls (the rest single),
    what its items cost in each mode relative to this run (a batch API's discount), and the cost of its
    single items under the option when it differs from the measured one (prompt caching; aligned with
    `TaskPairs.item_ids`)."""

    mixed_share: float = 0.0
    single_scale: float = 1.0
    mixed_scale: float = 1.0
    single_cost: np.ndarray | None = None


def serving_economics(
    pilot: Pilot,
    model: str,
    pairs: dict[str, TaskPairs],
    serving: dict[str, TaskServing],
    *,
    seed: int,
    resamples: int = RESAMPLES,
) -> PlanEconomics:
    """Economics of serving each task as `serving` says, against every task single as measured, on the
    same cluster resamples (an option's costs are summed over the same clusters as the measured ones)."""
    r = resample(pairs, seed, resamples)
    d = r.means
    costs = {t: how.single_cost for t, how in serving.items() if how.single_cost is not None}
    changed = {t: replace(pairs[t], cost_single=c) for t, c in costs.items()}
    sums = cluster_sums({**pairs, **changed})[0] if changed else r.sums  # the same clusters, in the same order
    o = task_means(sums, r.counts) if changed else d
    cost, acc, plan, single = {}, {}, {}, {}
    for t, how in serving.items():
        cost[t] = _blend(how.mixed_share, how.mixed_scale * d.cost_mixed[t], how.single_scale * o.cost_single[t])
        acc[t] = _blend(how.mixed_share, d.acc_mixed[t], d.acc_single[t])
        measured, mixed = cluster_costs(r.sums[t])
        option = cluster_costs(sums[t])[0]
        single[t] = measured
        plan[t] = _blend(how.mixed_share, how.mixed_scale * mixed, how.single_scale * option)
    mixed_tasks = [t for t, how in serving.items() if how.mixed_share > 0]
    saving = saving_bounds(pilot, single, plan, r.counts)
    figures = plan_figures(pilot, d, cost, acc)
    shares = {t: how.mixed_share for t, how in serving.items()}
    bounds = money_bounds(pilot, r.sums, d, shares, figures.compute_single - figures.compute_plan)
    issues = _issues(pilot, pairs, figures)
    calls = len({k for t in mixed_tasks for k in pairs[t].cluster_keys()}) if mixed_tasks else r.clusters
    plan_ = _plan(pilot, model, figures, _Intervals(saving, bounds), mixed_tasks, (r.clusters, calls), issues)
    return replace(plan_, cost_spread=None if issues.cost else cost_spread(sums))


def _blend(share: float, mixed: np.ndarray, single: np.ndarray) -> np.ndarray:
    """`share` of mixed and the rest single; a side with no share is left out (it may be unknown)."""
    if share <= 0:
        return single
    return mixed if share >= 1 else share * mixed + (1 - share) * single


@dataclass(frozen=True)
class _Issues:
    """Why a plan's figures are unknown, named so the page can say so (never a silent NaN or 0)."""

    cost: str | None = None
    volume: str | None = None
    without_pairs: list[str] = field(default_factory=list)
    without_volume: list[str] = field(default_factory=list)


def _issues(pilot: Pilot, pairs: dict[str, TaskPairs], f: PlanFigures) -> _Issues:
    unpaired = [t.name for t in pilot.tasks if pairs[t.name].n == 0]
    unset = [t.name for t in pilot.tasks if t.monthly_volume is None]
    cost = None
    if unpaired:
        cost = "no_pairs"
    elif not (np.isfinite(f.per_item_single[0]) and np.isfinite(f.per_item_plan[0])):
        cost = "no_cost"
    elif f.per_item_single[0] <= 0:
        cost = "zero_cost"  # nothing to save: a saving would divide by zero
    volume = "missing_volume" if unset else "zero_volume" if not any(t.monthly_volume for t in pilot.tasks) else None
    return _Issues(cost, volume, unpaired, unset)


@dataclass(frozen=True)
class _Intervals:
    """A plan's intervals that do not come from the percentiles of its own draws."""

    saving: tuple[np.ndarray, np.ndarray]
    money: MoneyBounds


def _bounded(value: np.ndarray, bounds: tuple[np.ndarray, np.ndarray]) -> Estimate:
    if not np.isfinite(value[0]):
        return UNKNOWN
    low, high = (float(np.asarray(x).flat[0]) for x in bounds)
    return Estimate(float(value[0]), low if np.isfinite(low) else None, high if np.isfinite(high) else None)


def _plan(
    pilot: Pilot,
    model: str,
    f: PlanFigures,
    intervals: _Intervals,
    mixed_tasks: Sequence[str],
    clusters: tuple[int, int],
    issues: _Issues,
) -> PlanEconomics:
    def monthly(draws: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None = None) -> Estimate:
        if issues.volume:
            return UNKNOWN
        return _estimate(draws) if bounds is None else _bounded(draws, bounds)

    money = intervals.money
    net = monthly(f.net, money.net)
    investment = pilot.economics.pilot_investment_usd
    horizon = pilot.economics.horizon_months
    return PlanEconomics(
        model=model,
        mixed_tasks=[t.name for t in pilot.tasks if t.name in set(mixed_tasks)],
        cost_known=issues.cost is None,
        investment_usd=investment,
        horizon_months=horizon,
        cost_per_item_single_usd=_estimate(f.per_item_single),
        cost_per_item_plan_usd=_estimate(f.per_item_plan),
        monthly_compute_single_usd=monthly(f.compute_single),
        monthly_compute_plan_usd=monthly(f.compute_plan),
        monthly_error_single_usd=monthly(f.error_single, money.error_single),
        monthly_error_plan_usd=monthly(f.error_plan, money.error_plan),
        cost_saving=_saving(f.saving[0], *intervals.saving) if issues.cost is None else UNKNOWN,
        monthly_compute_saving_usd=monthly(f.compute_single - f.compute_plan),
        net_monthly_benefit_usd=net,
        payback_months=payback(net, investment),
        roi=roi_over_horizon(net, investment, horizon),
        clusters=clusters[0],
        calls=clusters[1],
        cost_issue=issues.cost,
        volume_issue=issues.volume,
        tasks_without_pairs=issues.without_pairs,
        tasks_without_volume=issues.without_volume,
    )


def _saving(value: float, low: np.ndarray, high: np.ndarray) -> Estimate:
    if not np.isfinite(value):
        return UNKNOWN
    return Estimate(float(value), float(low) if np.isfinite(low) else None, float(high) if np.isfinite(high) else None)


def _payback_one(net: float | None, investment: float) -> float | None:
    if net is None or net <= 0:
        return None
    return investment / net


def payback(net: Estimate, investment: float) -> Estimate:
    """Months until the net benefit repays the investment. Payback falls as the benefit rises, so the
    interval's ends come from the benefit interval's opposite ends; None means "never" there."""
    if net.value is None:
        return UNKNOWN
    return Estimate(
        _payback_one(net.value, investment), _payback_one(net.high, investment), _payback_one(net.low, investment)
    )


def _roi_one(net: float | None, investment: float, horizon: int) -> float | None:
    return None if net is None else (net * horizon - investment) / investment


def roi_over_horizon(net: Estimate, investment: float, horizon: int) -> Estimate:
    """Return on the pilot investment over the horizon; undefined (None) when nothing was invested."""
    if net.value is None or investment <= 0:
        return UNKNOWN
    return Estimate(
        _roi_one(net.value, investment, horizon),
        _roi_one(net.low, investment, horizon),
        _roi_one(net.high, investment, horizon),
    )
