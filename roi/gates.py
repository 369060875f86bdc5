"""The gates of the staged-rollout decision, in one table (`GATES`): each gate's stage, what it judges
(each task, each mode, the model, the pilot), how its figures read, how its reason is worded, and the
function that judges it. The decision (roi/decision.py), the report's wording (roi/report/wording.py),
what places the tasks in a group and the docs' table of gates (tests/test_gates.py holds
docs/report.md to it) all follow the table.

Adding a gate: its judging function here, an entry in `GATES`, its words in roi/report/i18n.py
(`gate.<name>`, plus `reason.<name>.<status>` for a flag or grouping gate), its test, and its row in
the table of docs/report.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import pandas as pd

from roi.economics import TaskPairs
from roi.grouping import KEEP_SINGLE, UNDECIDED, Grouping
from roi.metrics import CellSummary, RunSummary, answered
from roi.pilot import Pilot
from roi.sample_size import normal_items_needed, quantile_calls_needed, rate_items_needed
from roi.stats import LEVEL, Z95, PairedDiff, Rate, quantile_interval, z_for
from roi.verdicts import COST_PASS_FACTOR, Status, accuracy_verdicts, judge, judge_cost, none_if_nan, rate_verdicts

MODES = ("single", "mixed")
LATENCY_QUANTILE = 0.95


@dataclass(frozen=True, kw_only=True)
class GateResult:
    gate: str
    stage: int
    task: str | None  # the task a per-task gate judges (None otherwise)
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
    mode: str | None = None  # the mode a per-mode gate judges (failed calls)
    unit: str = "items"  # what n and items_needed count: items (per task) or calls
    level: float = LEVEL  # confidence level of the interval
    why: str | None = None  # an unknown figure: what made it unknown (roi.economics.PlanEconomics.cost_issue)

    @property
    def scope(self) -> str | None:
        """What the gate judges within its model: a task, a mode, or None (the model or the pilot)."""
        return self.task or self.mode


@dataclass(frozen=True)
class Evidence:
    """What one model's gates are judged on."""

    pilot: Pilot
    summary: RunSummary
    items: pd.DataFrame
    model: str
    cells: dict[tuple[str, str], CellSummary]  # (task, mode) -> the model's cell
    pairs: dict[str, TaskPairs]  # per task: the items both modes answered
    level: float  # the simultaneous level of the per-task intervals
    grouping: Grouping | None = None  # known once the per-task gates have placed the tasks

    @property
    def tasks(self) -> list[str]:
        return [t.name for t in self.pilot.tasks]

    @property
    def placed(self) -> Grouping:
        assert self.grouping is not None, "a model-wide gate is judged after the tasks are placed"
        return self.grouping

    @property
    def compared(self) -> bool:
        """Both modes answered at least one item (calls that all failed answered none): there is
        something to compare."""
        answered = {m.mode for m in self.summary.modes if m.model == self.model and m.answered_items}
        return {"single", "mixed"} <= answered


Judge = Callable[[Evidence], list[GateResult]]


@dataclass(frozen=True)
class Gate:
    stage: int
    per: Literal["task", "mode", "model", "pilot"]  # what one result judges
    shown: Literal["percent", "seconds", "count"]  # how its figures read
    reason: Literal["interval", "count", "flag", "grouping"]  # how its reason is worded (report/wording.py)
    judge: Judge
    places: bool = False  # a per-task gate that decides whether the task may share a call (roi/grouping.py)


# ---------------------------------------------------------------- building results


@dataclass(frozen=True)
class Scope:
    """Where a gate applies and what its n counts."""

    task: str | None = None
    mode: str | None = None
    unit: str = "items"
    level: float = LEVEL


def interval_gate(
    gate: str,
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
        stage=GATES[gate].stage,
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


def rate_gate(name: str, rate: Rate, limit: float, min_n: int, scope: Scope) -> GateResult:
    z = z_for(scope.level)
    value, low, high, verdict = rate_verdicts(rate.k, rate.n, limit=limit, z=z, min_n=min_n)
    status = Status(str(verdict))
    needed = rate_items_needed(rate.k, rate.n, limit=limit, z=z, min_n=min_n) if status is Status.MORE_DATA else None
    ends = (none_if_nan(float(value)), none_if_nan(float(low)), none_if_nan(float(high)))
    return interval_gate(name, status, ends, limit, rate.n, needed, scope=scope)


def flag_gate(
    name: str, ok: bool, *, status: Status | None = None, value: float | None = None, limit: float | None = None,
    n: int = 0, needed: int | None = None, upper: bool = True,
) -> GateResult:  # fmt: skip
    """A gate with no interval: a condition that holds or not (or a grouping count)."""
    return GateResult(
        gate=name,
        stage=GATES[name].stage,
        task=None,
        status=status or (Status.PASS if ok else Status.FAIL),
        value=value,
        low=None,
        high=None,
        worst=None,
        limit=limit,
        upper_limit=upper,
        n=n,
        items_needed=needed,
    )


# ---------------------------------------------------------------- per task


def judge_items(ev: Evidence) -> list[GateResult]:
    """Enough items that both modes answered."""
    min_n = ev.pilot.gates.min_items_per_task
    found = []
    for task in ev.tasks:
        n = ev.pairs[task].n
        status, needed = (Status.PASS, None) if n >= min_n else (Status.MORE_DATA, min_n)
        ends = (float(n), None, None)
        gate = interval_gate("items", status, ends, float(min_n), n, needed, upper=False, scope=Scope(task=task))
        found.append(_own_worst(gate))
    return found


def _own_worst(gate: GateResult) -> GateResult:
    """A count is not an interval: it is its own worst end."""
    return replace(gate, worst=gate.value)


def accuracy_gate(task: str, diff: PairedDiff | None, ev: Evidence) -> GateResult:
    gates = ev.pilot.gates
    limit, min_n, scope = gates.max_accuracy_drop, gates.min_items_per_task, Scope(task=task, level=ev.level)
    if diff is None or diff.n == 0:
        return interval_gate("accuracy_drop", Status.MORE_DATA, (None, None, None), limit, 0, min_n, scope=scope)
    v = accuracy_verdicts(
        diff.both, diff.a_only, diff.b_only, diff.neither, limit=limit, z=z_for(ev.level), min_n=min_n
    )
    needed = none_if_nan(float(v.needed[0]))
    status, ends = Status(str(v.status[0])), (float(v.drop[0]), float(v.best[0]), float(v.worst[0]))
    return interval_gate(
        "accuracy_drop", status, ends, limit, diff.n, None if needed is None else int(needed), scope=scope
    )


def judge_accuracy(ev: Evidence) -> list[GateResult]:
    """Mixed accuracy against single on the same items: the drop's interval within `max_accuracy_drop`."""
    return [accuracy_gate(t, cell.vs_single if (cell := _mixed(ev, t)) else None, ev) for t in ev.tasks]


def _mixed(ev: Evidence, task: str) -> CellSummary | None:
    return ev.cells.get((task, "mixed"))


def _task_rates(ev: Evidence, name: str, rate_of: Callable[[CellSummary], Rate], limit: float) -> list[GateResult]:
    """A per-task gate on a rate of the task's mixed answers."""
    empty, min_n = Rate(0, 0, None, None, None), ev.pilot.gates.min_items_per_task
    return [
        rate_gate(
            name, rate_of(cell) if (cell := _mixed(ev, t)) else empty, limit, min_n, Scope(task=t, level=ev.level)
        )
        for t in ev.tasks
    ]


def judge_unparseable(ev: Evidence) -> list[GateResult]:
    """Mixed answers that could not be read back to their query."""
    return _task_rates(ev, "unparseable_rate", lambda c: c.unparseable, ev.pilot.gates.max_unparseable_rate)


def judge_swaps(ev: Evidence) -> list[GateResult]:
    """Mixed answers that are another query's expected answer from the same call."""
    return _task_rates(ev, "swap_rate", lambda c: c.swaps, ev.pilot.gates.max_swap_rate)


# ---------------------------------------------------------------- per mode, model, pilot


def judge_modes_compared(ev: Evidence) -> list[GateResult]:
    return [flag_gate("modes_compared", ev.compared)]


def judge_failed_calls(ev: Evidence) -> list[GateResult]:
    """Failed calls of each mode: a failed mixed call loses every item it held. The measured plan's calls
    (mode plan) are judged too when the plan prices the grouping: they are the group's own calls."""
    limit, min_n = ev.pilot.gates.max_failed_call_rate, ev.pilot.gates.min_items_per_task
    modes = {m.mode: m for m in ev.summary.modes if m.model == ev.model}
    judged = (*MODES, "plan") if ev.grouping is not None and ev.grouping.measured_plan else MODES
    return [
        rate_gate("failed_calls", modes[mode].failed, limit, min_n, Scope(mode=mode, unit="calls"))
        for mode in judged
        if mode in modes
    ]


def judge_group_exists(ev: Evidence) -> list[GateResult]:
    """At least two tasks may share a call; more data while enough undecided tasks could still join."""
    grouping = ev.placed
    sharing, undecided = len(grouping.tasks_placed("may_share")), grouping.tasks_placed(UNDECIDED)
    status, needed = Status.PASS, None
    if len(grouping.mixed_tasks) < 2:
        status = Status.MORE_DATA if sharing + len(undecided) >= 2 else Status.FAIL
        needs = sorted(p.items_needed or math.inf for p in grouping.placements if p.placement == UNDECIDED)
        if status is Status.MORE_DATA and needs[1 - sharing] < math.inf:
            needed = int(needs[1 - sharing])  # settles the fewest undecided tasks that make a pair
    return [
        flag_gate(
            "group_exists",
            True,
            status=status,
            value=float(sharing),
            limit=2.0,
            n=len(grouping.placements),
            needed=needed,
            upper=False,
        )
    ]


def judge_cost_saving(ev: Evidence) -> list[GateResult]:
    # With no group to price, show what mixing every task would save (the stage is blocked anyway).
    grouping, gates = ev.placed, ev.pilot.gates
    plan = grouping.economics if grouping.mixed_tasks else grouping.all_mixed_economics
    s, n, limit, min_n = plan.cost_saving, plan.calls, gates.min_cost_saving, gates.min_items_per_task
    known = plan.cost_known and s.value is not None
    status = Status.UNKNOWN
    if known:
        status = judge_cost(s.value, s.high, s.low, limit, n=n, min_n=min_n)
    needed = None
    if status is Status.MORE_DATA and s.value is not None:
        worst = s.value if s.low is None else s.low
        needed = normal_items_needed(n, s.value, worst, limit, upper=False, z=Z95, min_n=COST_PASS_FACTOR * min_n)
    ends = (s.value, s.low, s.high)
    gate = interval_gate("cost_saving", status, ends, limit, n, needed, upper=False, scope=Scope(unit="calls"))
    return [replace(gate, why=plan.cost_issue) if status is Status.UNKNOWN else gate]


def judge_p95_latency(ev: Evidence) -> list[GateResult]:
    """p95 latency per item of mixed calls that answered live (a reused call's latency is an earlier
    run's), with the order-statistic interval over calls: every item of a call shares its latency."""
    items = ev.items
    own = answered(items[(items["model"] == ev.model) & (items["mode"] == "mixed")])
    own = own[own["reused"] == 0]
    calls = own.drop_duplicates("call_id")
    lat, size = calls["latency_s"].to_numpy(dtype=float), calls["n_items"].to_numpy(dtype=float)
    limit, min_n = ev.pilot.gates.max_p95_latency_s, ev.pilot.gates.min_items_per_task
    q = quantile_interval(lat, size, LATENCY_QUANTILE, LEVEL)
    status = judge(q.value, q.low, q.high, limit, upper=True, n=q.calls, min_n=min_n)
    needed = None
    if status is Status.MORE_DATA:
        within = float(size[lat <= limit].sum() / size.sum()) if size.sum() else 1.0
        effective = quantile_calls_needed(within, q=LATENCY_QUANTILE, level=LEVEL, min_n=min_n)
        needed = None if effective is None else math.ceil(effective * max(q.calls, 1) / max(q.effective_calls, 1))
    ends = (q.value, q.low, q.high)
    return [interval_gate("p95_latency", status, ends, limit, q.calls, needed, scope=Scope(unit="calls"))]


def judge_operations(ev: Evidence) -> list[GateResult]:
    ops = ev.pilot.operations
    return [flag_gate("operations", bool(ops.escalation_contact) and bool(ops.reviewers))]


def judge_all_tasks_mixed(ev: Evidence) -> list[GateResult]:
    grouping = ev.placed
    kept, undecided = grouping.tasks_placed(KEEP_SINGLE), grouping.tasks_placed(UNDECIDED)
    status, needed = Status.PASS, None
    if kept or not (grouping.mixed_tasks or undecided):
        status = Status.FAIL
    elif undecided or not grouping.mixed_tasks:
        status = Status.MORE_DATA
        needs = [p.items_needed for p in grouping.placements if p.placement == UNDECIDED]
        needed = None if None in needs else max((n for n in needs if n is not None), default=None)
    return [
        flag_gate(
            "all_tasks_mixed",
            True,
            status=status,
            value=float(len(grouping.single_tasks)),
            n=len(grouping.placements),
            needed=needed,
        )
    ]


# ---------------------------------------------------------------- the table

# In the order the report lists them; per-task gates are listed task by task where the first of them is.
GATES: dict[str, Gate] = {
    "modes_compared": Gate(1, "model", "count", "flag", judge_modes_compared),
    "failed_calls": Gate(1, "mode", "percent", "interval", judge_failed_calls),
    "group_exists": Gate(1, "model", "count", "grouping", judge_group_exists),
    "items": Gate(1, "task", "count", "count", judge_items, places=True),
    "accuracy_drop": Gate(1, "task", "percent", "interval", judge_accuracy, places=True),
    "unparseable_rate": Gate(1, "task", "percent", "interval", judge_unparseable, places=True),
    "swap_rate": Gate(2, "task", "percent", "interval", judge_swaps),
    "cost_saving": Gate(1, "model", "percent", "interval", judge_cost_saving),
    "p95_latency": Gate(2, "model", "seconds", "interval", judge_p95_latency),
    "operations": Gate(2, "pilot", "count", "flag", judge_operations),
    "all_tasks_mixed": Gate(3, "model", "count", "grouping", judge_all_tasks_mixed),
}

PLACING = tuple(name for name, g in GATES.items() if g.places)  # the gates that place a task
