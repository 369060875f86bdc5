"""The manager's briefing at the top of the report: what was measured, the two or three reasons behind
the decision, and what to do next, as data the report words in its language.

Reasons come from the gates that keep the recommended model from the next stage (or, for a go, from
the evidence that let it pass), most decisive first. Accuracy is told from the paired change on the
same items, *mixed minus single*, in percentage points: a negative change reads "mixed is N points
worse", whatever sign a gate keeps internally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roi.decision import Decision, ModelDecision, Status
from roi.gates import GateResult
from roi.metrics import CellSummary, RunSummary
from roi.pilot import Pilot

MOST = 3  # reasons and next steps shown
BLOCKING = (Status.FAIL, Status.MORE_DATA, Status.UNKNOWN)
# The order in which blocking gates explain a decision (too few items first, operations last): a manager
# reads the first reasons.
EXPLAINED = ("accuracy_drop", "unparseable_rate", "swap_rate", "cost_saving", "p95_latency")
FIGURE = {"unparseable_rate": "rate", "swap_rate": "rate", "cost_saving": "saving", "p95_latency": "p95_s"}


@dataclass(frozen=True)
class Point:
    """One reason or next step: a message key of the report (`brief.reason.<key>`, `brief.next.<key>`)
    and the figures its sentence states."""

    key: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Briefing:
    model: str  # the recommended model
    models: list[str]
    tasks: list[str]  # pilot order
    items_per_task: int  # items answered in both modes, fewest over the tasks (recommended model)
    answers: int  # scored answers of the run, every model and mode
    stage: int
    outcome: str
    reasons: list[Point]
    next_steps: list[Point]


def manager_briefing(pilot: Pilot, summary: RunSummary, decision: Decision) -> Briefing:
    chosen = decision.chosen
    cells = {(c.task, c.mode): c for c in summary.cells if c.model == chosen.model}
    tasks = [t.name for t in pilot.tasks]
    paired = [c.vs_single.n for t in tasks if (c := cells.get((t, "mixed"))) and c.vs_single]
    return Briefing(
        model=chosen.model,
        models=[m.name for m in pilot.models],
        tasks=tasks,
        items_per_task=min(paired, default=0),
        answers=sum(c.accuracy.n for c in summary.cells),
        stage=chosen.stage,
        outcome=chosen.outcome,
        reasons=_reasons(chosen, cells)[:MOST],
        next_steps=_next_steps(chosen, pilot)[:MOST],
    )


def _blocking(d: ModelDecision) -> dict[str, list[GateResult]]:
    """The gates that hold the model back, by kind. When no two tasks may share a call, the per-task
    gates that keep them apart are the reason, counted or not."""
    gates = list(d.blocking)
    if any(g.gate == "group_exists" for g in d.blocking):
        gates += [g for g in d.gates if g.task and g.stage == 1 and not g.counted]
    found: dict[str, list[GateResult]] = {}
    for gate in gates:
        if gate.status in BLOCKING:
            found.setdefault(gate.gate, []).append(gate)
    return found


def _reasons(d: ModelDecision, cells: dict[tuple[str, str], CellSummary]) -> list[Point]:
    if d.outcome == "not_compared":  # nothing was compared, so no gate's figures say why
        return [Point("not_compared")]
    blocking = _blocking(d)
    few = "items" in blocking
    reasons = [Point("too_few_items", _few(blocking["items"]))] if few else []
    for kind in EXPLAINED:
        gates = blocking.get(kind, [])
        failed = [g for g in gates if g.status is Status.FAIL]
        # With too few items, what is merely unsettled is said by "too few items" already.
        point = _reason(kind, failed, cells) if failed else None if few else _unsettled(kind, gates, cells)
        reasons += [point] if point else []
    if "operations" in blocking:
        reasons.append(Point("no_reviewers"))
    if not reasons and "group_exists" in blocking:
        reasons.append(Point("no_group"))
    if d.stage >= 1:
        reasons += _strengths(d, cells)
    return reasons


def _few(gates: list[GateResult]) -> dict[str, Any]:
    return {"n": min(g.n for g in gates), "limit": gates[0].limit}


def _change(cell: CellSummary | None) -> dict[str, Any] | None:
    """Mixed minus single on the same items, in points (negative: mixed is worse)."""
    d = cell.vs_single if cell else None
    if d is None or d.diff is None:
        return None
    low, high = (None if x is None else x * 100 for x in (d.low, d.high))
    return {"change": d.diff * 100, "low": low, "high": high, "n": d.n}


def _accuracy(key: str, gates: list[GateResult], cells: dict[tuple[str, str], CellSummary]) -> Point:
    tasks = [g.task for g in gates if g.task]
    changes = {t: c for t in tasks if (c := _change(cells.get((t, "mixed"))))}
    if not changes:
        return Point("accuracy_unmeasured", {"tasks": tasks})
    worst = min(changes, key=lambda t: changes[t]["change"])
    others = [t for t in tasks if t != worst]
    return Point(key, {"task": worst, **changes[worst], "others": others, "limit": _points(gates[0].limit)})


def _reason(kind: str, gates: list[GateResult], cells: dict[tuple[str, str], CellSummary]) -> Point | None:
    """Why failing gates of one kind fail (the worst task for per-task gates)."""
    if kind == "accuracy_drop":
        return _accuracy("accuracy_worse", gates, cells)
    if kind in ("unparseable_rate", "swap_rate"):
        top = max(gates, key=lambda g: g.value if g.value is not None else -1.0)
        return Point(kind, {"task": top.task, "rate": top.value, "n": top.n, "limit": top.limit})
    gate = gates[0]
    if kind == "cost_saving" and gate.value is not None:
        return Point(
            "costs_more" if gate.value < 0 else "saves_too_little", {"saving": gate.value, "limit": gate.limit}
        )
    if kind == "p95_latency" and gate.value is not None:
        return Point("slow", {"p95_s": gate.value, "limit": gate.limit})
    return None


def _unsettled(kind: str, gates: list[GateResult], cells: dict[tuple[str, str], CellSummary]) -> Point | None:
    """Why gates that are neither passed nor failed hold the decision: too few items, or no price."""
    if not gates:
        return None
    if kind == "accuracy_drop":
        return _accuracy("accuracy_unsettled", gates, cells)
    gate = max(gates, key=lambda g: g.items_needed or 0)
    if kind == "cost_saving" and (gate.status is Status.UNKNOWN or gate.value is None):
        return Point(f"cost_unknown_{gate.why}" if gate.why in ("no_pairs", "zero_cost") else "cost_unknown")
    values = {"task": gate.task, FIGURE[kind]: gate.value, "n": gate.n, "limit": gate.limit}
    return None if gate.value is None else Point(f"{kind}_unsettled", values)


def _points(fraction: float | None) -> float | None:
    return None if fraction is None else fraction * 100


def _strengths(d: ModelDecision, cells: dict[tuple[str, str], CellSummary]) -> list[Point]:
    """What let the model pass: accuracy held on the combined tasks, and the saving."""
    changes = [c for t in d.grouping.mixed_tasks if (c := _change(cells.get((t, "mixed"))))]
    found = []
    if changes:
        worst_end = min(c["low"] if c["low"] is not None else c["change"] for c in changes)
        found.append(Point("accuracy_holds", {"tasks": d.grouping.mixed_tasks, "change": worst_end}))
    saving = d.grouping.economics.cost_saving.value
    if saving is not None and saving > 0:
        found.append(Point("saves", {"saving": saving}))
    return found


def _collect(d: ModelDecision, minimum: int) -> Point:
    """More labelled items: how many per task, when the decision can tell; else at least the pilot's
    minimum (`gates.min_items_per_task`)."""
    n = min((p.n for p in d.grouping.placements), default=0)  # items answered in both modes
    if not d.items_needed:
        if n < minimum:
            return Point("collect_minimum", {"more": minimum - n, "needed": minimum, "n": n})
        return Point("collect_unknown", {"n": n})
    return Point("collect", {"more": max(d.items_needed - n, 1), "needed": d.items_needed, "n": n})


def _next_steps(d: ModelDecision, pilot: Pilot) -> list[Point]:
    if d.outcome == "not_compared":  # more items or a price would not help before both modes answer
        return [Point("run_both_modes")]
    blocking = _blocking(d)
    steps = []
    if d.stage >= 1:
        step = {"stage": d.stage, "review_share": pilot.operations.review_share}
        steps.append(Point("start_stage", step))
    failed = {g.task for k in ("accuracy_drop", "unparseable_rate", "swap_rate") for g in blocking.get(k, [])
              if g.status is Status.FAIL}  # fmt: skip
    interfering = [t.name for t in pilot.tasks if t.name in failed]
    if interfering:
        steps.append(Point("keep_single", {"tasks": interfering, "model": d.model}))
    # More items help when the evidence is merely thin: the decision asks for more data, or the pilot's
    # minimum number of items is not reached even though some gate failed already.
    if d.outcome == "more_data" or "items" in blocking:
        steps.append(_collect(d, pilot.gates.min_items_per_task))
    if "cost_saving" in blocking and any(g.status is Status.UNKNOWN for g in blocking["cost_saving"]):
        steps.append(Point("set_price", {"model": d.model}))
    if "operations" in blocking:
        steps.append(Point("name_reviewers"))
    return steps
