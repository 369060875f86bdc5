"""The staged-rollout decision: which stage the evidence supports, and why not the next one.

Stages (DESIGN.md): 0 Pilot (measure) -> 1 Shadow (mixed beside single, humans review disagreements)
-> 2 Limited (mixed serves part of the unit's traffic, with escalation) -> 3 Expand (more units or
tasks per call). Each stage adds gates to those of the stages below (see docs/report.md):

- 1 Shadow: both modes measured; at least two tasks can share a call; per grouped task: enough items,
  accuracy drop and unparseable rate within limits; the plan's cost saving at least `min_cost_saving`.
  Swaps and latency wait for stage 2 because no customer sees a shadow output.
- 2 Limited: per grouped task the swap rate within `max_swap_rate`; mixed p95 latency per item within
  `max_p95_latency_s`; operations name an escalation contact and at least one reviewer.
- 3 Expand: every task of the pilot can be combined (no task kept on single prompts).

Every gate is judged on its interval's worst end. A gate is `fail` when even the interval's best end is
beyond the limit (for accuracy with fewer than `min_items_per_task` items, only if the exact McNemar
test agrees at 5%), or the point estimate is with enough items; `more_data` when items are too few or
only the worst end is beyond the limit (with the items that would settle it); `unknown` when it cannot
be computed (cost without a price). The recommendation is the highest stage whose gates all pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from roi.economics import LEVEL, RESAMPLES, TaskPairs, task_pairs
from roi.grouping import Grouping, interference_matrix, recommend_grouping
from roi.metrics import CellSummary, RunSummary
from roi.pilot import Gates, Pilot
from roi.stats import Rate, wilson

if TYPE_CHECKING:
    from roi.levers import ModelLevers

STAGES = ("pilot", "shadow", "limited", "expand")
STAGE_GATES: dict[int, tuple[str, ...]] = {
    1: ("modes_compared", "group_exists", "items", "accuracy_drop", "unparseable_rate", "cost_saving"),
    2: ("swap_rate", "p95_latency", "operations"),
    3: ("all_tasks_mixed",),
}
TASK_GATES = ("items", "accuracy_drop", "unparseable_rate", "swap_rate")
INTERFERENCE_GATES = ("accuracy_drop", "unparseable_rate", "swap_rate")
MAX_ITEMS = 10_000_000
SIGNIFICANCE = 0.05
_EPS = 1e-12


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    MORE_DATA = "more_data"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class GateResult:
    gate: str
    stage: int
    task: str | None  # None for a model-wide gate
    status: Status
    value: float | None  # point estimate
    low: float | None  # interval
    high: float | None
    worst: float | None  # the end of the interval that is judged
    limit: float | None
    upper_limit: bool  # True: value must be at most `limit`; False: at least
    n: int
    items_needed: int | None = None  # per task, when the status is more_data
    counted: bool = True  # False: the task is kept on single prompts, so its gate does not block


@dataclass(frozen=True)
class StageResult:
    stage: int
    name: str
    status: Status
    gates: list[GateResult]


@dataclass(frozen=True)
class ModelDecision:
    model: str
    stage: int  # highest stage whose gates (and those of every lower stage) pass
    outcome: str  # ready | hold | more_data | unknown | not_compared
    blocking: list[GateResult]  # gates that keep the model from the next stage
    items_needed: int | None  # per task, to settle the blocking more_data gates
    grouping: Grouping
    stages: list[StageResult]
    gates: list[GateResult] = field(default_factory=list)  # every gate, counted or not
    levers: ModelLevers | None = None  # every cheaper way to serve the tasks (roi/levers.py), once evaluated


@dataclass(frozen=True)
class Decision:
    model: str  # the recommended model
    stage: int
    stage_name: str
    outcome: str
    models: list[ModelDecision]

    @property
    def chosen(self) -> ModelDecision:
        return next(m for m in self.models if m.model == self.model)


# ---------------------------------------------------------------- judging one figure


def _within(x: float, limit: float, upper: bool) -> bool:
    return x <= limit + _EPS if upper else x >= limit - _EPS


def judge(
    value: float | None, best: float | None, worst: float | None, limit: float, *, upper: bool, n: int, min_n: int
) -> Status:
    """Three-way verdict on an interval against a limit (see the module docstring)."""
    if n == 0:
        return Status.MORE_DATA
    if value is None or best is None or worst is None:
        return Status.UNKNOWN
    if not _within(best, limit, upper) or (not _within(value, limit, upper) and n >= min_n):
        return Status.FAIL
    if n < min_n or not _within(worst, limit, upper):
        return Status.MORE_DATA
    return Status.PASS


def projected_items(
    n: int, value: float | None, worst: float | None, limit: float, min_n: int, *, upper: bool
) -> int | None:
    """Items so that the interval's worst end comes within the limit, if its half-width shrinks as
    1/sqrt(n) and the point estimate stays put. None when the point estimate is not within the limit."""
    if n == 0 or value is None or worst is None:
        return min_n
    if not _within(value, limit, upper):
        return None
    if _within(worst, limit, upper):
        return max(min_n, n)
    room, gap = abs(limit - value), abs(worst - value)
    if room < _EPS:
        return None
    return min(MAX_ITEMS, max(min_n, math.ceil(n * (gap / room) ** 2)))


def items_for_rate(rate: Rate, limit: float, min_n: int) -> int | None:
    """Smallest n whose Wilson upper end is within `limit` at the observed rate (None if it never is)."""
    p = rate.value if rate.value is not None else 0.0
    if p >= limit:
        return None

    def ok(n: int) -> bool:
        high = wilson(round(p * n), n).high
        return high is not None and high <= limit

    hi = max(rate.n, 1)
    while not ok(hi):
        if hi >= MAX_ITEMS:
            return MAX_ITEMS
        hi *= 2
    lo = hi // 2
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return max(min_n, hi)


# ---------------------------------------------------------------- gates


def _rate_gate(name: str, stage: int, task: str, rate: Rate, limit: float, gates: Gates) -> GateResult:
    status = judge(rate.value, rate.low, rate.high, limit, upper=True, n=rate.n, min_n=gates.min_items_per_task)
    needed = items_for_rate(rate, limit, gates.min_items_per_task) if status is Status.MORE_DATA else None
    return GateResult(
        name, stage, task, status, rate.value, rate.low, rate.high, rate.high, limit, True, rate.n, needed
    )


def _accuracy_gate(task: str, cell: CellSummary | None, gates: Gates) -> GateResult:
    d = cell.vs_single if cell else None
    if d is None or d.diff is None or d.low is None or d.high is None:
        return GateResult(
            "accuracy_drop",
            1,
            task,
            Status.MORE_DATA,
            None,
            None,
            None,
            None,
            gates.max_accuracy_drop,
            True,
            0,
            gates.min_items_per_task,
        )
    drop, best, worst = -d.diff, -d.high, -d.low  # drop = single minus mixed
    limit, min_n = gates.max_accuracy_drop, gates.min_items_per_task
    status = judge(drop, best, worst, limit, upper=True, n=d.n, min_n=min_n)
    if status is Status.FAIL and d.n < min_n and (d.mcnemar_p is None or d.mcnemar_p >= SIGNIFICANCE):
        # A bootstrap over a handful of items collapses (one item: [x, x]); below the minimum, only a
        # drop the exact McNemar test also sees counts as a failure.
        status = Status.MORE_DATA
    needed = projected_items(d.n, drop, worst, limit, min_n, upper=True) if status is Status.MORE_DATA else None
    return GateResult("accuracy_drop", 1, task, status, drop, best, worst, worst, limit, True, d.n, needed)


def task_gates(task: str, cells: dict[tuple[str, str], CellSummary], n_paired: int, gates: Gates) -> list[GateResult]:
    mixed = cells.get((task, "mixed"))
    empty = wilson(0, 0)
    items_status = Status.PASS if n_paired >= gates.min_items_per_task else Status.MORE_DATA
    return [
        GateResult(
            "items",
            1,
            task,
            items_status,
            float(n_paired),
            None,
            None,
            float(n_paired),
            float(gates.min_items_per_task),
            False,
            n_paired,
            gates.min_items_per_task if items_status is Status.MORE_DATA else None,
        ),
        _accuracy_gate(task, mixed, gates),
        _rate_gate(
            "unparseable_rate", 1, task, mixed.unparseable if mixed else empty, gates.max_unparseable_rate, gates
        ),
        _rate_gate("swap_rate", 2, task, mixed.swaps if mixed else empty, gates.max_swap_rate, gates),
    ]


def _cost_gate(grouping: Grouping, n: int, gates: Gates) -> GateResult:
    # With no group to price, show what mixing every task would save (the stage is blocked anyway).
    plan = grouping.economics if grouping.mixed_tasks else grouping.all_mixed_economics
    s = plan.cost_saving
    limit = gates.min_cost_saving
    if not plan.cost_known or s.value is None:
        return GateResult("cost_saving", 1, None, Status.UNKNOWN, None, None, None, None, limit, False, n)
    status = judge(s.value, s.high, s.low, limit, upper=False, n=n, min_n=gates.min_items_per_task)
    needed = (
        projected_items(n, s.value, s.low, limit, gates.min_items_per_task, upper=False)
        if status is Status.MORE_DATA
        else None
    )
    return GateResult("cost_saving", 1, None, status, s.value, s.low, s.high, s.low, limit, False, n, needed)


def p95_interval(latencies: np.ndarray, seed: int, resamples: int = RESAMPLES) -> tuple[float, float, float] | None:
    """p95 of per-item latency with a bootstrap interval over items."""
    if latencies.size == 0:
        return None
    rng = np.random.default_rng(seed)
    draws = np.percentile(latencies[rng.integers(0, latencies.size, size=(resamples, latencies.size))], 95, axis=1)
    tail = (1 - LEVEL) / 2 * 100
    return (
        float(np.percentile(latencies, 95)),
        float(np.percentile(draws, tail)),
        float(np.percentile(draws, 100 - tail)),
    )


def _latency_gate(items: pd.DataFrame, model: str, gates: Gates, seed: int) -> GateResult:
    lat = items[(items["model"] == model) & (items["mode"] == "mixed")]["latency_s"].to_numpy(dtype=float)
    limit, min_n = gates.max_p95_latency_s, gates.min_items_per_task
    found = p95_interval(lat, seed)
    if found is None:
        return GateResult("p95_latency", 2, None, Status.MORE_DATA, None, None, None, None, limit, True, 0, min_n)
    value, low, high = found
    status = judge(value, low, high, limit, upper=True, n=lat.size, min_n=min_n)
    needed = projected_items(lat.size, value, high, limit, min_n, upper=True) if status is Status.MORE_DATA else None
    return GateResult("p95_latency", 2, None, status, value, low, high, high, limit, True, int(lat.size), needed)


def _flag(name: str, stage: int, ok: bool, n: int = 0, value: float | None = None) -> GateResult:
    status = Status.PASS if ok else Status.FAIL
    return GateResult(name, stage, None, status, value, None, None, None, None, True, n)


# ---------------------------------------------------------------- stages


def _stages(gates: list[GateResult]) -> list[StageResult]:
    out = []
    for stage in (1, 2, 3):
        mine = [g for g in gates if g.stage == stage]
        counted = [g.status for g in mine if g.counted]
        status = next((s for s in (Status.FAIL, Status.MORE_DATA, Status.UNKNOWN) if s in counted), Status.PASS)
        out.append(StageResult(stage, STAGES[stage], status, mine))
    return out


def _outcome(stage: int, blocking: list[GateResult]) -> str:
    if stage == 3:
        return "ready"
    statuses = {g.status for g in blocking}
    if Status.FAIL in statuses:
        return "hold"
    return "more_data" if Status.MORE_DATA in statuses else "unknown"


def decide_model(pilot: Pilot, summary: RunSummary, items: pd.DataFrame, model: str) -> ModelDecision:
    tasks = [t.name for t in pilot.tasks]
    seed, g = pilot.seed, pilot.gates
    cells = {(c.task, c.mode): c for c in summary.cells if c.model == model}
    pairs: dict[str, TaskPairs] = task_pairs(items, model, tasks)
    per_task = {t: task_gates(t, cells, pairs[t].n, g) for t in tasks}
    failing = {
        t: [r.gate for r in rs if r.gate in INTERFERENCE_GATES and r.status is Status.FAIL]
        for t, rs in per_task.items()
    }
    grouping = recommend_grouping(pilot, model, pairs, failing, interference_matrix(items, model, tasks), seed=seed)
    grouped = set(grouping.mixed_tasks)
    compared = any(m == "mixed" for _, m in cells) and any(m == "single" for _, m in cells)
    n_group = min((pairs[t].n for t in grouping.mixed_tasks or tasks), default=0)
    ops = pilot.operations
    gates = [
        _flag("modes_compared", 1, compared),
        _flag("group_exists", 1, len(grouped) >= 2, value=float(len(grouped))),
        # With no group at all, every task's gates are the evidence for that: they all count.
        *[replace_counted(r, t in grouped or not grouped) for t in tasks for r in per_task[t]],
        _cost_gate(grouping, n_group, g),
        _latency_gate(items, model, g, seed),
        _flag("operations", 2, bool(ops.escalation_contact) and bool(ops.reviewers)),
        _flag("all_tasks_mixed", 3, len(grouped) == len(tasks), value=float(len(grouping.single_tasks))),
    ]
    stages = _stages(gates)
    stage = 0
    for s in stages:
        if s.status is not Status.PASS:
            break
        stage = s.stage
    blocking = [] if stage == 3 else [x for x in stages[stage].gates if x.counted and x.status is not Status.PASS]
    # A gate that cannot project (its estimate is beyond the limit) asks for at least the minimum.
    needed = [x.items_needed or g.min_items_per_task for x in blocking if x.status is Status.MORE_DATA]
    outcome = "not_compared" if not compared else _outcome(stage, blocking)
    return ModelDecision(model, stage, outcome, blocking, max(needed, default=None), grouping, stages, gates)


def replace_counted(gate: GateResult, counted: bool) -> GateResult:
    return replace(gate, counted=counted)


_OUTCOME_RANK = {"ready": 4, "hold": 1, "more_data": 3, "unknown": 2, "not_compared": 0}


def decide(pilot: Pilot, summary: RunSummary, items: pd.DataFrame) -> Decision:
    """Decide for every model of the pilot and recommend the one that reaches the highest stage."""
    models = [decide_model(pilot, summary, items, m.name) for m in pilot.models]

    def rank(d: ModelDecision) -> tuple[int, int, float]:
        net = d.grouping.economics.net_monthly_benefit_usd.value
        return d.stage, _OUTCOME_RANK[d.outcome], net if net is not None else -math.inf

    best = max(models, key=rank)
    return Decision(best.model, best.stage, STAGES[best.stage], best.outcome, models)
