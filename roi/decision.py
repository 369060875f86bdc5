"""The staged-rollout decision: which stage the evidence supports, and why not the next one.

Stages: 0 Pilot (measure) -> 1 Shadow (mixed beside single, humans review disagreements) -> 2 Limited
(mixed serves part of the unit's traffic, with escalation) -> 3 Expand (more units or tasks per call).
Each stage adds gates to those below it (roi/gates.py has them; docs/report.md the table):

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
from roi.gates import GATES, PLACING, Evidence, GateResult
from roi.grouping import Grouping, interference_matrix, recommend_grouping, with_measured_plan
from roi.metrics import RunSummary
from roi.pilot import Pilot
from roi.stats import LEVEL, simultaneous_level
from roi.verdicts import Status as Status

if TYPE_CHECKING:
    from roi.levers import ModelLevers

STAGES = ("pilot", "shadow", "limited", "expand")


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
    cells = {(c.task, c.mode): c for c in summary.cells if c.model == model}
    pairs = task_pairs(items, model, tasks)
    ev = Evidence(pilot, summary, items, model, cells, pairs, simultaneous_level(LEVEL, len(tasks)))
    per_task = _per_task(ev)
    matrix = interference_matrix(items, model, tasks)
    grouping = recommend_grouping(pilot, model, pairs, per_task, matrix, placing=PLACING, seed=pilot.seed)
    ev = replace(ev, grouping=with_measured_plan(grouping, pilot, items, seed=pilot.seed))
    if ev.placed.measured_plan:
        per_task = _confirmed_on_plan(ev, per_task)
    gates = _judged(ev, per_task)
    stages = _stages(gates)
    stage = 0
    for s in stages:
        if s.status is not Status.PASS:
            break
        stage = s.stage
    blocking = [] if stage == 3 else [x for x in stages[stage].gates if x.counted and x.status is not Status.PASS]
    needs = [items_per_task(x, len(tasks)) for x in blocking if x.status is Status.MORE_DATA]
    needed = None if not needs or None in needs else max(n for n in needs if n is not None)
    outcome = "not_compared" if not ev.compared else _outcome(stage, blocking)
    return ModelDecision(model, stage, outcome, blocking, needed, ev.placed, stages, gates)


def _per_task(ev: Evidence) -> dict[str, list[GateResult]]:
    """Every per-task gate's results, task by task, in the table's order (they place the tasks)."""
    judged = [r for gate in GATES.values() if gate.per == "task" for r in gate.judge(ev)]
    return {t: [r for r in judged if r.task == t] for t in ev.tasks}


def _confirmed_on_plan(ev: Evidence, per_task: dict[str, list[GateResult]]) -> dict[str, list[GateResult]]:
    """The grouped tasks' per-task gates judged again on the measured plan's calls (mode plan): the group
    was chosen on the calls that held every task, and its own calls are a fresh sample to confirm it on,
    free of that selection. The placements stay those of the pilot's mixed calls."""
    grouped = ev.placed.mixed_tasks
    plan_cells = {(t, "mixed"): c for t in grouped if (c := ev.cells.get((t, "plan"))) is not None}
    plan_pairs = task_pairs(ev.items, ev.model, grouped, mode="plan")
    confirmed = _per_task(replace(ev, cells={**ev.cells, **plan_cells}, pairs={**ev.pairs, **plan_pairs}))
    return {t: confirmed[t] if t in grouped else per_task[t] for t in ev.tasks}


def _judged(ev: Evidence, per_task: dict[str, list[GateResult]]) -> list[GateResult]:
    """Every gate in the table's order; per-task gates task by task where the first of them is, counted
    only for the grouped tasks."""
    grouped, found = set(ev.placed.mixed_tasks), []
    first_per_task = next(name for name, gate in GATES.items() if gate.per == "task")
    for name, gate in GATES.items():
        if name == first_per_task:
            found += [replace(r, counted=t in grouped) for t in ev.tasks for r in per_task[t]]
        elif gate.per != "task":
            found += gate.judge(ev)
    return found


_OUTCOME_RANK = {"ready": 4, "hold": 1, "more_data": 3, "unknown": 2, "not_compared": 0}


def decide(pilot: Pilot, summary: RunSummary, items: pd.DataFrame) -> Decision:
    """Decide for every model of the pilot and recommend the one that reaches the highest stage."""
    models = [decide_model(pilot, summary, items, m.name) for m in pilot.models]

    def rank(d: ModelDecision) -> tuple[int, int, float]:
        net = d.grouping.economics.net_monthly_benefit_usd.value
        return d.stage, _OUTCOME_RANK[d.outcome], net if net is not None else -math.inf

    best = max(models, key=rank)
    return Decision(best.model, best.stage, STAGES[best.stage], best.outcome, models)
