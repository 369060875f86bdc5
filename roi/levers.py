"""Every cheaper way to serve the same tasks, beside mixing: "Cheaper without mixing?".

Per model, five options, each priced per month against single prompts as measured, with the same
resamples as every other economics figure (roi/economics.py `serving_economics`):

- `single`: single prompts as measured in this run;
- `single_cached`: single prompts with prompt caching. A local engine already computes each shared
  prefix once per batch, so its measured machine time is this option. For an API model, each call's
  cacheable prefix is the tokens the API reported as cached (`reported`), else the share of the prompt
  its task's calls have in common (`modelled`, a character estimate) when that reaches
  `price.min_cacheable_tokens`. Cached tokens cost `cached_input_per_1m`, except that a cached prefix
  lives about five minutes: at most `CACHE_WRITES_PER_MONTH` calls of a task a month write it again,
  at `cache_write_per_1m` (default: the input price);
- `single_batch`: single prompts on the provider's batch API at `price.batch_discount` off, for the
  tasks that may wait `BATCH_TURNAROUND_S` for an answer (the others stay as measured);
- `mixed`: the recommended grouping (roi/grouping.py), priced like the ROI section's plan;
- `mixed_batch`: that plan on the batch API, where every grouped task may wait.

Single-prompt options keep single mode's answers, so they carry no accuracy risk; mixed options carry
the grouped tasks' measured accuracy, and pass only when the decision's accuracy gates for the grouped
tasks pass and the model reaches stage 1. Mixing with prompt caching is not an option (not priced).
The recommendation is the cheapest passing option by monthly compute + error cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from roi.decision import Decision, ModelDecision, Status
from roi.economics import (
    PlanEconomics,
    TaskPairs,
    TaskServing,
    mixed_shares,
    pairings,
    plan_pairs,
    serving_economics,
    task_pairs,
)
from roi.gates import PLACING
from roi.pilot import ModelSpec, Pilot, Price
from roi.saving_sources import shared_prefix_chars

OPTIONS = ("single", "single_cached", "single_batch", "mixed", "mixed_batch")
MIXED_OPTIONS = ("mixed", "mixed_batch")
BATCH_TURNAROUND_S = 24 * 3600.0  # OpenAI's and Anthropic's batch APIs answer within 24 hours
CACHE_WRITES_PER_MONTH = 30 * 24 * 12  # one write per 5-minute cache lifetime, a 30-day month


@dataclass(frozen=True)
class Lever:
    """One way to serve the tasks, priced against single prompts as measured (`plan`: None when the
    option does not apply to this model; `note` then says why)."""

    option: str
    plan: PlanEconomics | None
    source: str  # measured | reported | modelled | engine (how its cost was found)
    passes_accuracy: bool  # single-prompt options always; mixed ones when the accuracy gates pass
    batch_tasks: list[str]  # tasks this option sends to a batch API
    note: str | None = None  # a message key: why the option is not offered, or a caveat

    @property
    def monthly_total_usd(self) -> float | None:
        """Compute + error cost a month (point estimate), None when unknown."""
        if self.plan is None:
            return None
        compute, errors = self.plan.monthly_compute_plan_usd.value, self.plan.monthly_error_plan_usd.value
        return None if compute is None or errors is None else compute + errors


@dataclass(frozen=True)
class ModelLevers:
    model: str
    levers: list[Lever]
    cheapest: str | None  # the cheapest option that passes the accuracy gates; None when costs are unknown

    def lever(self, option: str) -> Lever:
        return next(x for x in self.levers if x.option == option)


def batch_tasks(pilot: Pilot) -> list[str]:
    """Tasks whose answers may take as long as a batch API does."""
    default = pilot.gates.max_p95_latency_s
    return [t.name for t in pilot.tasks if (t.max_latency_s or default) >= BATCH_TURNAROUND_S]


# ---------------------------------------------------------------- prompt caching, per call


def cached_call_cost_usd(
    price: Price, *, prompt_tokens: int, output_tokens: int, cached_tokens: int, write_share: float
) -> float:
    """A call's cost when `cached_tokens` of its prompt come from the provider's cache, except in the
    `write_share` of calls that find the cache empty and write the prefix (at `cache_write_per_1m`,
    default the input price)."""
    read = price.cached_input_per_1m if price.cached_input_per_1m is not None else price.input_per_1m
    write = price.cache_write_per_1m if price.cache_write_per_1m is not None else price.input_per_1m
    prefix = cached_tokens * (write_share * write + (1 - write_share) * read)
    return ((prompt_tokens - cached_tokens) * price.input_per_1m + prefix + output_tokens * price.output_per_1m) / 1e6


def write_share(monthly_volume: int | None) -> float:
    """Share of a task's calls that write its prefix to the cache rather than read it: every call while
    calls are rarer than one per cache lifetime, else `CACHE_WRITES_PER_MONTH` of them."""
    return min(1.0, CACHE_WRITES_PER_MONTH / monthly_volume) if monthly_volume else 1.0


@dataclass(frozen=True)
class CachedCosts:
    """Per task, each single item's cost with prompt caching (by item id), and how it was found."""

    source: str  # reported | modelled
    per_item: dict[str, dict[str, float]]


def cached_single_costs(pilot: Pilot, spec: ModelSpec, calls: pd.DataFrame, items: pd.DataFrame) -> CachedCosts | None:
    """Single items' costs with prompt caching for an API model with a price; None otherwise."""
    price = spec.price
    if price is None:
        return None
    own = calls[(calls["model"] == spec.name) & (calls["mode"] == "single") & calls["error"].isna()].copy()
    if own.empty or own["prompt_tokens"].isna().any() or own["output_tokens"].isna().any():
        return None
    reported = bool(own["cached_prompt_tokens"].fillna(0).sum() > 0)
    task_of = items[(items["model"] == spec.name) & (items["mode"] == "single")].drop_duplicates("call_id")
    own = own.merge(task_of[["call_id", "task", "item_id"]], on="call_id")
    own["cacheable"] = _reported_prefix(own) if reported else _modelled_prefix(own, price.min_cacheable_tokens)
    volumes = {t.name: t.monthly_volume for t in pilot.tasks}
    # A batch model's calls were measured at the batch price: price its cached calls there too.
    scale = 1.0 - price.batch_discount if spec.batch and price.batch_discount is not None else 1.0
    per_item: dict[str, dict[str, float]] = {}
    for row in own.to_dict("records"):
        cost = scale * cached_call_cost_usd(
            price,
            prompt_tokens=int(row["prompt_tokens"]),
            output_tokens=int(row["output_tokens"]),
            cached_tokens=int(row["cacheable"]),
            write_share=write_share(volumes[str(row["task"])]),
        )
        per_item.setdefault(str(row["task"]), {})[str(row["item_id"])] = cost / int(row["n_items"])
    return CachedCosts("reported" if reported else "modelled", per_item)


def _reported_prefix(calls: pd.DataFrame) -> pd.Series:
    """The prefix the provider caches for a task: the most cached tokens it reported for any of its calls
    (the first call of a task finds the cache empty)."""
    return calls.groupby("task")["cached_prompt_tokens"].transform(lambda s: s.fillna(0).max())


def _modelled_prefix(calls: pd.DataFrame, min_tokens: int) -> pd.Series:
    """Tokens of each prompt its task's calls have in common (estimated from characters), or 0 when that
    is shorter than the provider caches."""
    shared = shared_prefix_chars(calls)
    lengths = calls["prompt"].str.len().clip(lower=1)
    tokens = (calls["prompt_tokens"] * shared / lengths).round().astype(int)
    return tokens.where(tokens >= min_tokens, 0)


# ---------------------------------------------------------------- the comparison


Pricer = Callable[[dict[str, TaskServing]], PlanEconomics]


def compare_levers(
    pilot: Pilot,
    model: str,
    pairs: dict[str, TaskPairs],
    calls: pd.DataFrame,
    items: pd.DataFrame,
    mixed_tasks: Sequence[str],
    mixing_passes: bool,
) -> ModelLevers:
    """Every option for `model`: `pairs` are its items answered in both modes, `mixed_tasks` the
    recommended group and `mixing_passes` whether the group's tasks pass the accuracy gates."""
    spec = next(m for m in pilot.models if m.name == model)
    tasks = [t.name for t in pilot.tasks]

    def priced(serving: dict[str, TaskServing]) -> PlanEconomics:
        return serving_economics(pilot, model, pairs, serving, seed=pilot.seed)

    single = {t: TaskServing() for t in tasks}
    levers = [
        Lever("single", priced(single), "measured", True, []),
        _cached(pilot, spec, pairs, calls, items, priced),
        _batched("single_batch", spec, single, batch_tasks(pilot), priced, passes=True),
    ]
    # With no group to recommend, mixing is shown as it was run (every task mixed), failing.
    group = list(mixed_tasks) if len(mixed_tasks) >= 2 else tasks
    shares = mixed_shares(pilot, group)  # as far as the group's volumes pair up, like the ROI's plan
    grouped = {t: TaskServing(mixed_share=shares[t]) for t in tasks}
    passes = mixing_passes and len(mixed_tasks) >= 2
    note = None if len(mixed_tasks) >= 2 else "levers.no_group"
    waiting = batch_tasks(pilot) if all(t in batch_tasks(pilot) for t in group) else []
    levers.append(
        Lever("mixed", replace(priced(grouped), pairing=pairings(pilot, group)), "measured", passes, [], note)
    )
    levers.append(_batched("mixed_batch", spec, grouped, waiting, priced, passes=passes, note="levers.group_waits"))
    return ModelLevers(model, levers, _cheapest(levers))


def _cached(
    pilot: Pilot, spec: ModelSpec, pairs: dict[str, TaskPairs], calls: pd.DataFrame, items: pd.DataFrame, priced: Pricer
) -> Lever:
    tasks = [t.name for t in pilot.tasks]
    if spec.price is None:
        # Paid by machine time: the engine already computed each shared prefix once per batch.
        single = priced({t: TaskServing() for t in tasks})
        return Lever("single_cached", single, "engine", True, [], "levers.engine_caches")
    found = cached_single_costs(pilot, spec, calls, items)
    if found is None:
        return Lever("single_cached", None, "modelled", True, [], "levers.no_tokens")
    serving = {
        t: TaskServing(single_cost=np.array([found.per_item.get(t, {}).get(i, np.nan) for i in pairs[t].item_ids]))
        for t in tasks
    }
    note = None if spec.price.cached_input_per_1m is not None else "levers.no_cached_price"
    return Lever("single_cached", priced(serving), found.source, True, [], note)


def _batched(
    option: str,
    spec: ModelSpec,
    base: dict[str, TaskServing],
    waiting: list[str],
    priced: Pricer,
    *,
    passes: bool,
    note: str = "levers.no_task_waits",
) -> Lever:
    """`base` with the tasks in `waiting` sent to the batch API (their mixed calls too)."""
    discount = spec.price.batch_discount if spec.price is not None else None
    if discount is None:
        why = "levers.no_batch_price" if spec.price is not None else "levers.local_no_batch"
        return Lever(option, None, "modelled", passes, [], why)
    if not waiting:
        return Lever(option, None, "modelled", passes, [], note)
    scale = 1.0 if spec.batch else 1.0 - discount  # a batch model's calls were measured at the batch price
    serving = {
        t: replace(how, single_scale=scale, mixed_scale=scale) if t in waiting else how for t, how in base.items()
    }
    return Lever(option, priced(serving), "modelled", passes, [t for t in base if t in waiting])


def _cheapest(levers: list[Lever]) -> str | None:
    """The passing option with the lowest monthly compute + error cost; ties go to the earlier option
    (single prompts before mixing: the same cost with no accuracy risk)."""
    known = [(x.monthly_total_usd, i) for i, x in enumerate(levers) if x.passes_accuracy and x.plan is not None]
    ranked = sorted((cost, i) for cost, i in known if cost is not None and np.isfinite(cost))
    return levers[ranked[0][1]].option if ranked else None


# ---------------------------------------------------------------- attached to the decision


def mixing_passes(decision: ModelDecision) -> bool:
    """Whether mixing may go ahead: the recommended group's tasks pass every accuracy gate (on the
    interval's worst end) and the model reaches stage 1. The placing gates alone pass by construction
    for a grouped task; a stage held at 0 (failed calls, the cost gate) must not name mixing as the
    cheapest option that passes."""
    grouped = set(decision.grouping.mixed_tasks)
    gates = [
        g for g in decision.gates if g.task in grouped and g.gate in PLACING
    ]  # what passes the accuracy gates means
    placed = len(grouped) >= 2 and bool(gates) and all(g.status is Status.PASS for g in gates)
    return placed and decision.stage >= 1


def with_levers(pilot: Pilot, items: pd.DataFrame, calls: pd.DataFrame, decision: Decision) -> Decision:
    """The decision with every model's comparison of levers (ModelDecision.levers)."""
    tasks = [t.name for t in pilot.tasks]

    def compared(m: ModelDecision) -> ModelLevers:
        measured = plan_pairs(items, m.model, tasks, m.grouping.mixed_tasks) if m.grouping.measured_plan else None
        pairs = measured or task_pairs(items, m.model, tasks)
        return compare_levers(pilot, m.model, pairs, calls, items, m.grouping.mixed_tasks, mixing_passes(m))

    return replace(decision, models=[replace(m, levers=compared(m)) for m in decision.models])
