"""The staged-rollout decision: which stage the evidence supports, and why not the next one.

Stages: 0 Pilot (measure) -> 1 Shadow (mixed beside single, humans review disagreements) -> 2 Limited
(mixed serves part of the unit's traffic, with escalation) -> 3 Expand (more units or tasks per call).
Each stage adds gates to those below it (docs/report.md has the table):

- 1 Shadow: both modes measured; failed calls of each mode within `max_failed_call_rate`; at least two
  tasks may share a call (roi/grouping.py), each with enough items, its accuracy drop and unparseable
  rate within limits; the plan's cost saving at least `min_cost_saving`. Swaps and latency wait for
  stage 2 because no customer sees a shadow output.
- 2 Limited: per grouped task the swap rate within `max_swap_rate`; mixed p95 latency per item within
  `max_p95_latency_s`; operations name an escalation contact and at least one reviewer.
- 3 Expand: every task of the pilot may share a call.

Every gate is judged on its interval (roi/stats.py): `pass` when the worst end is within the limit with
at least `min_items_per_task` items (or calls); `fail` only when the whole interval is beyond the limit
(for accuracy below `min_items_per_task` items, only if the exact McNemar test agrees at 5%); `more_data`
otherwise, with the items (or calls) at which the gate would pass with 80% probability if the measured
figure were the truth (roi/sample_size.py); `unknown` when the figure cannot be computed (cost without a
price). Per-task gates use intervals simultaneous over the pilot's tasks (Bonferroni: each at level
1 - 0.05 / tasks), because the group is chosen among the tasks that pass them; model-wide gates use 95%.
The recommendation is the highest stage whose gates, and those of every stage below, all pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pandas as pd

from roi.economics import task_pairs
from roi.grouping import KEEP_SINGLE, UNDECIDED, Grouping, interference_matrix, recommend_grouping, with_measured_plan
from roi.metrics import CellSummary, RunSummary, answered
from roi.pilot import Gates, Pilot
from roi.sample_size import normal_items_needed, quantile_calls_needed, rate_items_needed
from roi.stats import LEVEL, Z95, PairedDiff, Rate, quantile_interval, simultaneous_level, z_for
from roi.verdicts import Status as Status
from roi.verdicts import accuracy_verdicts, judge, none_if_nan, rate_verdicts

if TYPE_CHECKING:
    from roi.levers import ModelLevers

STAGES = ("pilot", "shadow", "limited", "expand")
MODES = ("single", "mixed")
LATENCY_QUANTILE = 0.95


@dataclass(frozen=True)
class GateResult:
    gate: str
    stage: int
    task: str | None  # None for a model-wide gate
    status: Status
    value: float | None  # point estimate
    low: float | None  # interval (None: unbounded at this n)
    high: float | None
    worst: float | None  # the end of the interval that is judged
    limit: float | None
    upper_limit: bool  # True: value must be at most `limit`; False: at least
    n: int
    items_needed: int | None = None  # when the status is more_data: n that would settle it (see `unit`)
    counted: bool = True  # False: the task is not in the group, so its gate does not block
    mode: str | None = None  # for a gate on one mode (failed calls)
    unit: str = "items"  # what n and items_needed count: items (per task) or calls
    level: float = LEVEL  # confidence level of the interval


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
    items_needed: int | None  # per task, to settle the blocking more_data gates (None: cannot tell)
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


# ---------------------------------------------------------------- gates


@dataclass(frozen=True)
class Scope:
    """Where a gate applies and what its n counts."""

    task: str | None = None
    mode: str | None = None
    unit: str = "items"
    level: float = LEVEL


def interval_gate(
    gate: str,
    stage: int,
    status: Status,
    interval: tuple[float | None, float | None, float | None],
    limit: float,
    n: int,
    needed: int | None,
    *,
    upper: bool = True,
    scope: Scope = Scope(),
) -> GateResult:
    """A gate judged on `interval` = (value, low, high): its worst end is `high` for an upper limit."""
    value, low, high = interval
    return GateResult(
        gate=gate,
        stage=stage,
        task=scope.task,
        status=status,
        value=value,
        low=low,
        high=high,
        worst=high if upper else low,
        limit=limit,
        upper_limit=upper,
        n=n,
        items_needed=needed,
        mode=scope.mode,
        unit=scope.unit,
        level=scope.level,
    )


def rate_gate(name: str, stage: int, rate: Rate, limit: float, min_n: int, scope: Scope) -> GateResult:
    z = z_for(scope.level)
    value, low, high, verdict = rate_verdicts(rate.k, rate.n, limit=limit, z=z, min_n=min_n)
    status = Status(str(verdict))
    needed = rate_items_needed(rate.k, rate.n, limit=limit, z=z, min_n=min_n) if status is Status.MORE_DATA else None
    ends = (none_if_nan(float(value)), none_if_nan(float(low)), none_if_nan(float(high)))
    return interval_gate(name, stage, status, ends, limit, rate.n, needed, scope=scope)


def accuracy_gate(task: str, diff: PairedDiff | None, gates: Gates, level: float) -> GateResult:
    limit, min_n, scope = gates.max_accuracy_drop, gates.min_items_per_task, Scope(task=task, level=level)
    if diff is None or diff.n == 0:
        return interval_gate("accuracy_drop", 1, Status.MORE_DATA, (None, None, None), limit, 0, min_n, scope=scope)
    v = accuracy_verdicts(diff.both, diff.a_only, diff.b_only, diff.neither, limit=limit, z=z_for(level), min_n=min_n)
    needed = none_if_nan(float(v.needed[0]))
    status, ends = Status(str(v.status[0])), (float(v.drop[0]), float(v.best[0]), float(v.worst[0]))
    return interval_gate(
        "accuracy_drop", 1, status, ends, limit, diff.n, None if needed is None else int(needed), scope=scope
    )


def _items_gate(task: str, n_paired: int, gates: Gates) -> GateResult:
    enough, n = n_paired >= gates.min_items_per_task, float(n_paired)
    status, needed = (Status.PASS, None) if enough else (Status.MORE_DATA, gates.min_items_per_task)
    gate = interval_gate(
        "items", 1, status, (n, None, None), float(gates.min_items_per_task), n_paired, needed, upper=False,
        scope=Scope(task=task),
    )  # fmt: skip
    return replace(gate, worst=n)  # a count, not an interval: it is its own worst end


def task_gates(task: str, mixed: CellSummary | None, n_paired: int, gates: Gates, level: float) -> list[GateResult]:
    """A task's gates, at the simultaneous `level` of the pilot's per-task intervals."""
    empty, scope, min_n = Rate(0, 0, None, None, None), Scope(task=task, level=level), gates.min_items_per_task
    return [
        _items_gate(task, n_paired, gates),
        accuracy_gate(task, mixed.vs_single if mixed else None, gates, level),
        rate_gate(
            "unparseable_rate", 1, mixed.unparseable if mixed else empty, gates.max_unparseable_rate, min_n, scope
        ),
        rate_gate("swap_rate", 2, mixed.swaps if mixed else empty, gates.max_swap_rate, min_n, scope),
    ]


def failure_gates(summary: RunSummary, model: str, gates: Gates) -> list[GateResult]:
    """Failed calls of each mode: a failed mixed call loses every item it held."""
    limit, min_n = gates.max_failed_call_rate, gates.min_items_per_task
    modes = {m.mode: m for m in summary.modes if m.model == model}
    return [
        rate_gate("failed_calls", 1, modes[mode].failed, limit, min_n, Scope(mode=mode, unit="calls"))
        for mode in MODES
        if mode in modes
    ]


def _cost_gate(grouping: Grouping, gates: Gates) -> GateResult:
    # With no group to price, show what mixing every task would save (the stage is blocked anyway).
    plan = grouping.economics if grouping.mixed_tasks else grouping.all_mixed_economics
    s, n, limit, min_n = plan.cost_saving, plan.clusters, gates.min_cost_saving, gates.min_items_per_task
    known = plan.cost_known and s.value is not None
    status = judge(s.value, s.high, s.low, limit, upper=False, n=n, min_n=min_n) if known else Status.UNKNOWN
    if status is Status.FAIL and n < min_n:
        status = Status.MORE_DATA  # a bootstrap over a handful of calls is too narrow to fail on (one: [x, x])
    needed = None
    if status is Status.MORE_DATA and s.value is not None:
        needed = normal_items_needed(
            n, s.value, s.value if s.low is None else s.low, limit, upper=False, z=Z95, min_n=min_n
        )
    ends = (s.value, s.low, s.high)
    return interval_gate("cost_saving", 1, status, ends, limit, n, needed, upper=False, scope=Scope(unit="calls"))


def _latency_gate(items: pd.DataFrame, model: str, gates: Gates) -> GateResult:
    """p95 latency per item of mixed calls that answered live (a cached call's latency is an earlier
    run's), with the order-statistic interval over calls: every item of a call shares its latency."""
    own = answered(items[(items["model"] == model) & (items["mode"] == "mixed")])
    own = own[own["cached"] == 0] if "cached" in own else own
    calls = own.drop_duplicates("call_id")
    lat, size = calls["latency_s"].to_numpy(dtype=float), calls["n_items"].to_numpy(dtype=float)
    limit, min_n = gates.max_p95_latency_s, gates.min_items_per_task
    q = quantile_interval(lat, size, LATENCY_QUANTILE, LEVEL)
    status = judge(q.value, q.low, q.high, limit, upper=True, n=q.calls, min_n=min_n)
    needed = None
    if status is Status.MORE_DATA:
        within = float(size[lat <= limit].sum() / size.sum()) if size.sum() else 1.0
        effective = quantile_calls_needed(within, q=LATENCY_QUANTILE, level=LEVEL, min_n=min_n)
        needed = None if effective is None else math.ceil(effective * max(q.calls, 1) / max(q.effective_calls, 1))
    ends = (q.value, q.low, q.high)
    return interval_gate("p95_latency", 2, status, ends, limit, q.calls, needed, scope=Scope(unit="calls"))


def _flag(name: str, stage: int, ok: bool, n: int = 0, value: float | None = None) -> GateResult:
    status = Status.PASS if ok else Status.FAIL
    return GateResult(name, stage, None, status, value, None, None, None, None, True, n)


def _group_gate(grouping: Grouping) -> GateResult:
    """At least two tasks may share a call; more data while enough undecided tasks could still join."""
    sharing, undecided = len(grouping.tasks_placed("may_share")), grouping.tasks_placed(UNDECIDED)
    status, needed = Status.PASS, None
    if len(grouping.mixed_tasks) < 2:
        status = Status.MORE_DATA if sharing + len(undecided) >= 2 else Status.FAIL
        needs = sorted(p.items_needed or math.inf for p in grouping.placements if p.placement == UNDECIDED)
        if status is Status.MORE_DATA and needs[1 - sharing] < math.inf:
            needed = int(needs[1 - sharing])  # settles the fewest undecided tasks that make a pair
    return GateResult(
        gate="group_exists",
        stage=1,
        task=None,
        status=status,
        value=float(sharing),
        low=None,
        high=None,
        worst=None,
        limit=2.0,
        upper_limit=False,
        n=len(grouping.placements),
        items_needed=needed,
    )


def _all_tasks_gate(grouping: Grouping) -> GateResult:
    kept, undecided = grouping.tasks_placed(KEEP_SINGLE), grouping.tasks_placed(UNDECIDED)
    status, needed = Status.PASS, None
    if kept or not (grouping.mixed_tasks or undecided):
        status = Status.FAIL
    elif undecided or not grouping.mixed_tasks:
        status = Status.MORE_DATA
        needs = [p.items_needed for p in grouping.placements if p.placement == UNDECIDED]
        needed = None if None in needs else max((n for n in needs if n is not None), default=None)
    return GateResult(
        gate="all_tasks_mixed",
        stage=3,
        task=None,
        status=status,
        value=float(len(grouping.single_tasks)),
        low=None,
        high=None,
        worst=None,
        limit=None,
        upper_limit=True,
        n=len(grouping.placements),
        items_needed=needed,
    )


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


def items_per_task(gate: GateResult, tasks: int) -> int | None:
    """A gate's items_needed as items per task: single calls hold one item, so their count spreads
    over the tasks; a mixed call holds one item of each task of its group."""
    if gate.items_needed is None or gate.unit != "calls" or gate.mode != "single":
        return gate.items_needed
    return math.ceil(gate.items_needed / max(tasks, 1))


def decide_model(pilot: Pilot, summary: RunSummary, items: pd.DataFrame, model: str) -> ModelDecision:
    tasks = [t.name for t in pilot.tasks]
    g = pilot.gates
    level = simultaneous_level(LEVEL, len(tasks))
    cells = {(c.task, c.mode): c for c in summary.cells if c.model == model}
    pairs = task_pairs(items, model, tasks)
    per_task = {t: task_gates(t, cells.get((t, "mixed")), pairs[t].n, g, level) for t in tasks}
    grouping = recommend_grouping(
        pilot, model, pairs, per_task, interference_matrix(items, model, tasks), seed=pilot.seed
    )
    grouping = with_measured_plan(grouping, pilot, items, seed=pilot.seed)
    grouped = set(grouping.mixed_tasks)
    compared = any(m == "mixed" for _, m in cells) and any(m == "single" for _, m in cells)
    ops = pilot.operations
    gates = [
        _flag("modes_compared", 1, compared),
        *failure_gates(summary, model, g),
        _group_gate(grouping),
        *[replace(r, counted=t in grouped) for t in tasks for r in per_task[t]],
        _cost_gate(grouping, g),
        _latency_gate(items, model, g),
        _flag("operations", 2, bool(ops.escalation_contact) and bool(ops.reviewers)),
        _all_tasks_gate(grouping),
    ]
    stages = _stages(gates)
    stage = 0
    for s in stages:
        if s.status is not Status.PASS:
            break
        stage = s.stage
    blocking = [] if stage == 3 else [x for x in stages[stage].gates if x.counted and x.status is not Status.PASS]
    needs = [items_per_task(x, len(tasks)) for x in blocking if x.status is Status.MORE_DATA]
    needed = None if not needs or None in needs else max(n for n in needs if n is not None)
    outcome = "not_compared" if not compared else _outcome(stage, blocking)
    return ModelDecision(model, stage, outcome, blocking, needed, grouping, stages, gates)


_OUTCOME_RANK = {"ready": 4, "hold": 1, "more_data": 3, "unknown": 2, "not_compared": 0}


def decide(pilot: Pilot, summary: RunSummary, items: pd.DataFrame) -> Decision:
    """Decide for every model of the pilot and recommend the one that reaches the highest stage."""
    models = [decide_model(pilot, summary, items, m.name) for m in pilot.models]

    def rank(d: ModelDecision) -> tuple[int, int, float]:
        net = d.grouping.economics.net_monthly_benefit_usd.value
        return d.stage, _OUTCOME_RANK[d.outcome], net if net is not None else -math.inf

    best = max(models, key=rank)
    return Decision(best.model, best.stage, STAGES[best.stage], best.outcome, models)
