"""Money: what each mode costs per item and per month, what its errors cost, and what a plan that serves
some tasks mixed (the rest single) gains over serving every task single.

Every figure carries a 95% interval from one paired bootstrap over items: each resample draws the same
items (by task and item id) for both modes, so the uncertainty of a *difference* is not inflated by
treating the modes as independent. Items are resampled within each task, because monthly figures weight
tasks by their `monthly_volume`. Unknown cost (a model with no price) stays None all the way up: the
compute cost, the saving, the net benefit, payback and ROI are then unknown, never 0.

Cost per item is the item's call cost divided by the items that call answered (see roi/metrics.py);
error cost is error rate x `cost_per_error_usd` x volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from roi.metrics import compute_seconds
from roi.pilot import Pilot

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval; all None when it cannot be computed."""

    value: float | None
    low: float | None
    high: float | None


UNKNOWN = Estimate(None, None, None)


@dataclass(frozen=True)
class TaskPairs:
    """One task's items answered in both modes, aligned by item id (cost NaN when unknown)."""

    task: str
    item_ids: list[str]
    correct_single: np.ndarray
    correct_mixed: np.ndarray
    cost_single: np.ndarray
    cost_mixed: np.ndarray

    @property
    def n(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class TaskEconomics:
    task: str
    n: int
    monthly_volume: int
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


def task_pairs(items: pd.DataFrame, model: str, tasks: Sequence[str]) -> dict[str, TaskPairs]:
    """Items of `model` answered in both single and mixed mode, per task, aligned by item id."""
    own = items[items["model"] == model].copy()
    own["cost_item"] = own["cost_usd"] / own["n_items"]
    keep = ["task", "item_id", "correct", "cost_item"]
    single = own[own["mode"] == "single"][keep]
    mixed = own[own["mode"] == "mixed"][keep]
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
        )
    return pairs


@dataclass(frozen=True)
class _Draws:
    """Per task, means over the sample (index 0) and over each bootstrap resample (1..RESAMPLES)."""

    acc_single: dict[str, np.ndarray]
    acc_mixed: dict[str, np.ndarray]
    cost_single: dict[str, np.ndarray]
    cost_mixed: dict[str, np.ndarray]


def _draws(pairs: dict[str, TaskPairs], seed: int, resamples: int) -> _Draws:
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in ("cs", "cm", "as", "am")}
    for task, p in pairs.items():
        idx = np.vstack([np.arange(p.n), rng.integers(0, p.n, size=(resamples, p.n))]) if p.n else None
        for key, values in (
            ("as", p.correct_single),
            ("am", p.correct_mixed),
            ("cs", p.cost_single),
            ("cm", p.cost_mixed),
        ):
            out[key][task] = values[idx].mean(axis=1) if idx is not None else np.full(resamples + 1, np.nan)
    return _Draws(out["as"], out["am"], out["cs"], out["cm"])


def _estimate(draws: np.ndarray | None) -> Estimate:
    if draws is None or np.isnan(draws).any():
        return UNKNOWN
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(draws[1:], [tail, 100 - tail])
    return Estimate(float(draws[0]), float(low), float(high))


def _weights(pilot: Pilot, tasks: Sequence[str]) -> dict[str, float]:
    """Monthly volumes, or equal weights when the pilot gives no volume at all."""
    volumes = {t.name: float(t.monthly_volume) for t in pilot.tasks if t.name in tasks}
    return volumes if sum(volumes.values()) > 0 else dict.fromkeys(volumes, 1.0)


def task_economics(
    pilot: Pilot, pairs: dict[str, TaskPairs], *, seed: int, resamples: int = RESAMPLES
) -> list[TaskEconomics]:
    """Per task: cost per item and error rate of each mode, and what they come to per month."""
    d = _draws(pairs, seed, resamples)
    rows = []
    for spec in pilot.tasks:
        t = spec.name
        volume, per_error = spec.monthly_volume, spec.cost_per_error_usd
        rows.append(
            TaskEconomics(
                task=t,
                n=pairs[t].n,
                monthly_volume=volume,
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


def plan_economics(
    pilot: Pilot,
    model: str,
    pairs: dict[str, TaskPairs],
    mixed_tasks: Sequence[str],
    *,
    seed: int,
    resamples: int = RESAMPLES,
) -> PlanEconomics:
    """Economics of serving `mixed_tasks` mixed and the rest single, against all single (same resamples)."""
    serving = {t: TaskServing(mixed_share=1.0 if t in mixed_tasks else 0.0) for t in pairs}
    return serving_economics(pilot, model, pairs, serving, seed=seed, resamples=resamples)


def _plan(
    pilot: Pilot,
    model: str,
    d: _Draws,
    cost_plan: dict[str, np.ndarray],
    acc_plan: dict[str, np.ndarray],
    mixed_tasks: Sequence[str],
) -> PlanEconomics:
    tasks = [t.name for t in pilot.tasks]
    volume = {t.name: float(t.monthly_volume) for t in pilot.tasks}
    per_error = {t.name: t.cost_per_error_usd for t in pilot.tasks}
    weights = _weights(pilot, tasks)
    compute_single = sum(volume[t] * d.cost_single[t] for t in tasks)
    compute_plan = sum(volume[t] * cost_plan[t] for t in tasks)
    error_single = sum(volume[t] * per_error[t] * (1 - d.acc_single[t]) for t in tasks)
    error_plan = sum(volume[t] * per_error[t] * (1 - acc_plan[t]) for t in tasks)
    total_weight = sum(weights.values())
    per_item_single = sum(weights[t] * d.cost_single[t] for t in tasks) / total_weight
    per_item_plan = sum(weights[t] * cost_plan[t] for t in tasks) / total_weight
    assert isinstance(per_item_single, np.ndarray) and isinstance(per_item_plan, np.ndarray)
    with np.errstate(divide="ignore", invalid="ignore"):
        saving = np.where(per_item_single > 0, 1 - per_item_plan / per_item_single, np.nan)
    net = _estimate(np.asarray(compute_single + error_single - compute_plan - error_plan))
    investment = pilot.economics.pilot_investment_usd
    horizon = pilot.economics.horizon_months
    return PlanEconomics(
        model=model,
        mixed_tasks=[t for t in tasks if t in set(mixed_tasks)],
        cost_known=not bool(np.isnan(per_item_single).any() or np.isnan(per_item_plan).any()),
        investment_usd=investment,
        horizon_months=horizon,
        cost_per_item_single_usd=_estimate(per_item_single),
        cost_per_item_plan_usd=_estimate(per_item_plan),
        monthly_compute_single_usd=_estimate(np.asarray(compute_single)),
        monthly_compute_plan_usd=_estimate(np.asarray(compute_plan)),
        monthly_error_single_usd=_estimate(np.asarray(error_single)),
        monthly_error_plan_usd=_estimate(np.asarray(error_plan)),
        cost_saving=_estimate(saving),
        monthly_compute_saving_usd=_estimate(np.asarray(compute_single - compute_plan)),
        net_monthly_benefit_usd=net,
        payback_months=payback(net, investment),
        roi=roi_over_horizon(net, investment, horizon),
    )


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
    same resamples (an option's cost arrays are drawn over the same items as the measured ones)."""
    d = _draws(pairs, seed, resamples)
    costs = {t: how.single_cost for t, how in serving.items() if how.single_cost is not None}
    changed = {t: replace(pairs[t], cost_single=c) for t, c in costs.items()}
    o = _draws({**pairs, **changed}, seed, resamples) if changed else d  # the same items: same seed and sizes
    cost, acc = {}, {}
    for t, how in serving.items():
        cost[t] = _blend(how.mixed_share, how.mixed_scale * d.cost_mixed[t], how.single_scale * o.cost_single[t])
        acc[t] = _blend(how.mixed_share, d.acc_mixed[t], d.acc_single[t])
    return _plan(pilot, model, d, cost, acc, [t for t, how in serving.items() if how.mixed_share > 0])


def _blend(share: float, mixed: np.ndarray, single: np.ndarray) -> np.ndarray:
    """`share` of mixed and the rest single; a side with no share is left out (it may be unknown)."""
    if share <= 0:
        return single
    return mixed if share >= 1 else share * mixed + (1 - share) * single


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
    """Where a mode's cost per item comes from (DESIGN.md "Where mixed prompting's saving really comes
    from"). The cacheable share is estimated from characters: the longest prefix each call shares with
    the other calls of its context (single: its task; mixed: its group), over the prompt's length."""

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
    latency_s_per_item: float | None = None  # the calls' latency per item (local: modelled, run alone)


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


def saving_sources(calls: pd.DataFrame, model: str, mode: str) -> SavingSources:
    ok = calls[(calls["model"] == model) & (calls["mode"] == mode) & calls["error"].isna()]
    items = int(ok["n_items"].sum())
    share = _cacheable_share(ok) if len(ok) else None
    prompt_per_item = (
        None if not items or ok["prompt_tokens"].isna().any() else float(ok["prompt_tokens"].sum() / items)
    )
    cached = ok["cached_prompt_tokens"]
    compute_s, machine = compute_seconds(ok)
    return SavingSources(
        model=model,
        mode=mode,
        calls_per_item=len(ok) / items if items else None,
        prompt_tokens_per_item=prompt_per_item,
        cacheable_prompt_share=share,
        uncached_prompt_tokens_per_item=None
        if share is None or prompt_per_item is None
        else prompt_per_item * (1 - share),
        cached_prompt_tokens_reported=None if cached.isna().all() else int(cached.fillna(0).sum()),
        output_tokens_per_item=None
        if not items or ok["output_tokens"].isna().any()
        else float(ok["output_tokens"].sum() / items),
        compute_s_per_item=compute_s / items if items else None,
        cost_per_item_usd=None if not items or ok["cost_usd"].isna().any() else float(ok["cost_usd"].sum() / items),
        compute_measured=machine,
        latency_s_per_item=float(ok["latency_s"].sum() / items) if items else None,
    )
