"""Money: what each mode costs per item and per month, what its errors cost, and what a plan that serves
some tasks mixed (the rest single) gains over serving every task single.

Every figure carries a 95% interval from one bootstrap over the run's independent units: a *cluster* is
one mixed call together with the single calls of its items. Item i of every task of a group shares
mixed call i, so its tasks' figures move together; each resample draws clusters with replacement and
recomputes every figure of both modes from the same draw, so a difference is not inflated by treating
the modes (or the tasks) as independent. Monthly figures weight tasks by their `monthly_volume`. Unknown
cost (a model with no price) stays None all the way up: the compute cost, the saving, the net benefit,
payback and ROI are then unknown, never 0.

Cost per item is the item's call cost divided by the items that call answered (see roi/metrics.py),
averaged over the items whose call did not fail; a failed call's items count as wrong. Error cost is
error rate x `cost_per_error_usd` x volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from roi.metrics import ModeSummary
from roi.pilot import Pilot
from roi.stats import LEVEL, cluster_resample_counts, percentile_bounds, ratio_bounds

RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval; all None when it cannot be computed."""

    value: float | None
    low: float | None
    high: float | None


UNKNOWN = Estimate(None, None, None)


@dataclass(frozen=True)
class TaskPairs:
    """One task's items answered in both modes, aligned by item id (cost NaN when unknown). `clusters`
    names each item's mixed call (None: item i of every task shared call i); `failed_*` mark items of
    failed calls (counted wrong, left out of cost)."""

    task: str
    item_ids: list[str]
    correct_single: np.ndarray
    correct_mixed: np.ndarray
    cost_single: np.ndarray
    cost_mixed: np.ndarray
    clusters: list[str] | None = None
    failed_single: np.ndarray | None = None
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
    pairing: list[Pairing] = field(default_factory=list)  # the plan's mixed calls a month, per group
    cost_issue: str | None = None  # why the cost per item is unknown: no_pairs | no_cost | zero_cost
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
    volumes every item of a plan task is taken to ride in a full mixed call."""
    shares = {t.name: 1.0 if t.name in mixed_tasks else 0.0 for t in pilot.tasks}
    volume = {t.name: t.monthly_volume for t in pilot.tasks}
    for pair in pairings(pilot, mixed_tasks):
        for t in pair.tasks:
            shares[t] = pair.calls_per_month / (volume[t] or 1)  # no calls when a volume is 0
    return shares


def task_pairs(items: pd.DataFrame, model: str, tasks: Sequence[str], mode: str = "mixed") -> dict[str, TaskPairs]:
    """Items of `model` answered in both single and `mode` (mixed, or the measured plan's calls), per
    task, aligned by item id; the second mode's figures are the `*_mixed` arrays."""
    own = items[items["model"] == model].copy()
    own["cost_item"] = own["cost_usd"] / own["n_items"]
    own["failed"] = own["error"].notna() if "error" in own else False
    keep = ["task", "item_id", "correct", "cost_item", "failed", "call_id"]
    single = own[own["mode"] == "single"][keep]
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
            failed_single=rows["failed_single"].to_numpy(dtype=bool),
            failed_mixed=rows["failed_mixed"].to_numpy(dtype=bool),
        )
    return pairs


def plan_pairs(
    items: pd.DataFrame, model: str, tasks: Sequence[str], group: Sequence[str]
) -> dict[str, TaskPairs] | None:
    """The pairs a plan grouping `group` is priced from when its measured plan ran (roi/measured_plan.py):
    the group's tasks against their `plan` calls, the others as in `task_pairs`. None when the plan was
    not measured for every task of the group."""
    measured = task_pairs(items, model, group, mode="plan")
    if len(group) < 2 or any(measured[t].n == 0 for t in group):
        return None
    return task_pairs(items, model, tasks) | measured


# ---------------------------------------------------------------- cluster bootstrap


@dataclass(frozen=True)
class ClusterSums:
    """One task's sums over each cluster (last axis; leading axes may stack several pilots): items,
    correct answers and cost of each mode, and the items whose call answered (cost is averaged over those)."""

    items: np.ndarray
    correct_single: np.ndarray
    correct_mixed: np.ndarray
    answered_single: np.ndarray
    answered_mixed: np.ndarray
    cost_single: np.ndarray
    cost_mixed: np.ndarray


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
        ok_s = ~p.failed_single if p.failed_single is not None else np.ones(p.n, dtype=bool)
        ok_m = ~p.failed_mixed if p.failed_mixed is not None else np.ones(p.n, dtype=bool)

        def total(values: np.ndarray, where: np.ndarray = where) -> np.ndarray:
            return np.bincount(where, weights=np.asarray(values, dtype=float), minlength=len(index))

        out[task] = ClusterSums(
            items=total(np.ones(p.n)),
            correct_single=total(p.correct_single),
            correct_mixed=total(p.correct_mixed),
            answered_single=total(ok_s),
            answered_mixed=total(ok_m),
            cost_single=total(np.where(ok_s, p.cost_single, 0.0)),
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
        out["cs"][task] = _ratio(counts, s.cost_single, s.answered_single)
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
        single = sums.cost_single * n / sums.answered_single.sum(axis=-1, keepdims=True)
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
    d = resample(pairs, seed, resamples).means
    rows = []
    for spec in pilot.tasks:
        t = spec.name
        volume, per_error = _volume(spec.monthly_volume), spec.cost_per_error_usd
        rows.append(
            TaskEconomics(
                task=t,
                n=pairs[t].n,
                monthly_volume=spec.monthly_volume,
                cost_per_error_usd=per_error,
                cost_per_item_single_usd=_estimate(d.cost_single[t]),
                cost_per_item_mixed_usd=_estimate(d.cost_mixed[t]),
                error_rate_single=_estimate(1 - d.acc_single[t]),
                error_rate_mixed=_estimate(1 - d.acc_mixed[t]),
                monthly_compute_single_usd=_estimate(volume * d.cost_single[t]),
                monthly_compute_mixed_usd=_estimate(volume * d.cost_mixed[t]),
                monthly_error_single_usd=_estimate(volume * per_error * (1 - d.acc_single[t])),
                monthly_error_mixed_usd=_estimate(volume * per_error * (1 - d.acc_mixed[t])),
            )
        )
    return rows


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
    low, high = saving_bounds(pilot, single, plan, r.counts)
    figures = plan_figures(pilot, d, cost, acc)
    return _plan(pilot, model, figures, (low, high), mixed_tasks, r.clusters, _issues(pilot, pairs, figures))


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


def _plan(
    pilot: Pilot,
    model: str,
    f: PlanFigures,
    saving: tuple[np.ndarray, np.ndarray],
    mixed_tasks: Sequence[str],
    clusters: int,
    issues: _Issues,
) -> PlanEconomics:
    def monthly(draws: np.ndarray) -> Estimate:
        return UNKNOWN if issues.volume else _estimate(draws)

    net = monthly(f.net)
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
        monthly_error_single_usd=monthly(f.error_single),
        monthly_error_plan_usd=monthly(f.error_plan),
        cost_saving=_saving(f.saving[0], *saving) if issues.cost is None else UNKNOWN,
        monthly_compute_saving_usd=monthly(f.compute_single - f.compute_plan),
        net_monthly_benefit_usd=net,
        payback_months=payback(net, investment),
        roi=roi_over_horizon(net, investment, horizon),
        clusters=clusters,
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


@dataclass(frozen=True)
class SavingSources:
    """Where a mode's cost per item comes from, so that no saving a prefix cache would give anyway is
    sold as mixed prompting's. The cacheable share is estimated from characters: the longest prefix each
    call shares with the other calls of its context (single: its task; mixed: its group), over the
    prompt's length."""

    model: str
    mode: str
    calls_per_item: float | None
    prompt_tokens_per_item: float | None
    cacheable_prompt_share: float | None  # estimated; None with fewer than two calls per context
    uncached_prompt_tokens_per_item: float | None  # estimated tokens per item a prefix cache leaves
    cached_prompt_tokens_reported: int | None  # what the backend said it served from a cache
    output_tokens_per_item: float | None
    compute_s_per_item: float | None  # measured machine time where the backend gives it, else latency
    cost_per_item_usd: float | None
    compute_measured: bool = False  # compute_s_per_item is measured machine time (a local engine)
    latency_s_per_call: float | None = None  # mean latency of a call, what every item of it waits (local: modelled)


def _common_prefix(texts: list[str]) -> int:
    first, last = min(texts), max(texts)  # the lexicographic extremes bound every common prefix
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return size


def _contexts(calls: pd.DataFrame) -> pd.Series:
    return calls["call_id"].str.rsplit(":", n=1).str[0]  # model/single:task or model/mixed:g0


def shared_prefix_chars(calls: pd.DataFrame) -> pd.Series:
    """Characters of each call's prompt that every call of its context shares (single: its task; mixed:
    its group): what a prefix cache could serve. 0 for a call alone in its context."""
    out = pd.Series(0, index=calls.index, dtype=int)
    for _, group in calls.groupby(_contexts(calls)):
        if len(group) >= 2:
            out[group.index] = _common_prefix([str(p) for p in group["prompt"]])
    return out


def _cacheable_share(calls: pd.DataFrame) -> float | None:
    if (calls.groupby(_contexts(calls)).size() < 2).any():
        return None
    lengths = calls["prompt"].str.len()
    shares = (shared_prefix_chars(calls) / lengths)[lengths > 0]
    return float(shares.mean()) if len(shares) else None


def _known_mean(values: pd.Series) -> float | None:
    return None if values.empty or values.isna().any() else float(values.mean())


def saving_sources(summary: ModeSummary | None, calls: pd.DataFrame, model: str, mode: str) -> SavingSources:
    """A mode's cost per item, part by part. The counts, tokens, machine time and cost are the run's
    summary of the model and mode (roi/metrics.py; None: the mode has no call); read from the calls is
    only what the summary does not hold: the prompts' shared prefixes, the tokens a backend served from
    its own prompt cache, and the latency."""
    ok = calls[(calls["model"] == model) & (calls["mode"] == mode) & calls["error"].isna()]
    if summary is None:
        return SavingSources(
            model=model, mode=mode, calls_per_item=None, prompt_tokens_per_item=None, cacheable_prompt_share=None,
            uncached_prompt_tokens_per_item=None, cached_prompt_tokens_reported=None, output_tokens_per_item=None,
            compute_s_per_item=None, cost_per_item_usd=None,
        )  # fmt: skip
    items = summary.items
    share = _cacheable_share(ok) if len(ok) else None
    prompt_per_item = _per_item(summary.prompt_tokens, items)
    cached = ok["cached_prompt_tokens"]
    return SavingSources(
        model=model,
        mode=mode,
        calls_per_item=(summary.calls - summary.failed_calls) / items if items else None,
        prompt_tokens_per_item=prompt_per_item,
        cacheable_prompt_share=share,
        uncached_prompt_tokens_per_item=None
        if share is None or prompt_per_item is None
        else prompt_per_item * (1 - share),
        cached_prompt_tokens_reported=None if cached.isna().all() else int(cached.fillna(0).sum()),
        output_tokens_per_item=_per_item(summary.output_tokens, items),
        compute_s_per_item=_per_item(summary.compute_s, items),
        cost_per_item_usd=_per_item(summary.cost_usd, items),
        compute_measured=summary.compute_basis == "machine",
        latency_s_per_call=float(ok["latency_s"].mean()) if len(ok) else None,
    )


def _per_item(total: float | pd.Series | None, items: int) -> float | None:
    """A total over a mode's answered items, per item (None: unknown, or no item answered)."""
    if total is None or not items:
        return None
    return float((total.sum() if isinstance(total, pd.Series) else total) / items)
