"""Which tasks may share a mixed call, on conclusive evidence only.

A task's placement rests on its stage-1 gates (items, accuracy drop, unparseable answers), judged by
roi/decision.py on intervals simultaneous over the pilot's tasks (Bonferroni), because the group is
chosen among the tasks that pass them:

- *may share*: every one of them passes on its interval's worst end;
- *keep single*: one of them fails, i.e. its whole interval is beyond the limit;
- *undecided*: anything else; about N more items would settle it.

The group is the tasks that may share, when there are at least two. Stage-2 gates (answer swaps,
latency) never remove a task from this stage-1 plan: they hold the rollout at stage 1 instead. The
grouped tasks were measured in calls that also held the others, so the shadow stage must confirm the
group; the report says so. The group's saving is priced like any plan (roi/economics.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from roi.economics import PlanEconomics, TaskPairs, plan_economics, plan_pairs
from roi.pilot import Pilot

MAY_SHARE, KEEP_SINGLE, UNDECIDED = "may_share", "keep_single", "undecided"


class Judged(Protocol):
    """What grouping reads of a judged gate (roi.gates.GateResult)."""

    @property
    def gate(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def items_needed(self) -> int | None: ...


@dataclass(frozen=True)
class InterferenceMatrix:
    """Mixed-mode answers of each task (rows) that were another task's gold answer in the same call
    (`swaps`) or fell in another task's answer space (`other_space`), by that other task (columns)."""

    tasks: list[str]
    items: list[int]  # mixed items per row task
    swaps: list[list[int]]
    other_space: list[list[int]]


@dataclass(frozen=True)
class TaskPlacement:
    task: str
    n: int  # items answered in both modes
    placement: str  # may_share | keep_single | undecided
    mixed: bool  # in the recommended group
    failing_gates: list[str]  # whole interval beyond the limit
    pending_gates: list[str]  # neither passing nor failing yet
    items_needed: int | None  # undecided: items per task that would settle every pending gate
    swaps_from: dict[str, int]  # task whose gold answer this task's query received -> count
    answers_in_space_of: dict[str, int]


@dataclass(frozen=True)
class Grouping:
    model: str
    mixed_tasks: list[str]  # the group (empty when fewer than two tasks may share)
    single_tasks: list[str]  # every other task: served single in the plan
    placements: list[TaskPlacement]
    economics: PlanEconomics  # the recommendation against all single
    all_mixed_economics: PlanEconomics  # every task mixed, as measured, for comparison
    measured_plan: bool = False  # `economics` comes from the group's own calls (mode plan), not mixed ones

    def tasks_placed(self, placement: str) -> list[str]:
        return [p.task for p in self.placements if p.placement == placement]


def placements(statuses: np.ndarray) -> np.ndarray:
    """Placement of each task from the statuses of its placement gates (last axis), element by element
    over any leading axes (pilots x tasks in the calibration benchmark)."""
    statuses = np.asarray(statuses)
    fail = (statuses == "fail").any(axis=-1)
    passing = (statuses == "pass").all(axis=-1)
    return np.where(fail, KEEP_SINGLE, np.where(passing, MAY_SHARE, UNDECIDED))


def group_mask(placed: np.ndarray) -> np.ndarray:
    """Tasks in the group: those that may share, when at least two do (last axis: the pilot's tasks)."""
    share = np.asarray(placed) == MAY_SHARE
    return np.asarray(share & (share.sum(axis=-1, keepdims=True) >= 2))


def interference_matrix(items: pd.DataFrame, model: str, tasks: Sequence[str]) -> InterferenceMatrix:
    mixed = items[(items["model"] == model) & (items["mode"] == "mixed")]
    if "error" in mixed:
        mixed = mixed[mixed["error"].isna()]

    def counts(column: str) -> list[list[int]]:
        table = mixed.groupby(["task", column]).size()
        return [[int(table.get((row, col), 0)) for col in tasks] for row in tasks]

    return InterferenceMatrix(
        tasks=list(tasks),
        items=[int((mixed["task"] == t).sum()) for t in tasks],
        swaps=counts("swap_with"),
        other_space=counts("other_task_space"),
    )


def _row(matrix: list[list[int]], tasks: list[str], i: int) -> dict[str, int]:
    return {tasks[j]: v for j, v in enumerate(matrix[i]) if v}


def _needed(pending: Sequence[Judged]) -> int | None:
    needs = [g.items_needed for g in pending]
    return None if not needs or None in needs else max(n for n in needs if n is not None)


def recommend_grouping(
    pilot: Pilot,
    model: str,
    pairs: dict[str, TaskPairs],
    gates: Mapping[str, Sequence[Judged]],
    matrix: InterferenceMatrix,
    *,
    placing: Collection[str],
    seed: int,
) -> Grouping:
    """Place every task from its judged gates (`gates[task]`; only those named in `placing`, the
    gates that place a task (roi.gates.PLACING), are read) and group the tasks that may share."""
    tasks = [t.name for t in pilot.tasks]
    own = {t: [g for g in gates.get(t, ()) if g.gate in placing] for t in tasks}
    placed = np.array([placements(np.array([str(g.status) for g in own[t]] or ["more_data"])) for t in tasks])
    grouped = group_mask(placed)
    mixed = [t for t, g in zip(tasks, grouped, strict=True) if g]
    rows = []
    for i, t in enumerate(tasks):
        pending = [g for g in own[t] if str(g.status) not in ("pass", "fail")]
        rows.append(
            TaskPlacement(
                task=t,
                n=pairs[t].n,
                placement=str(placed[i]),
                mixed=t in mixed,
                failing_gates=[g.gate for g in own[t] if str(g.status) == "fail"],
                pending_gates=[g.gate for g in pending],
                items_needed=_needed(pending) if placed[i] == UNDECIDED else None,
                swaps_from=_row(matrix.swaps, matrix.tasks, i),
                answers_in_space_of=_row(matrix.other_space, matrix.tasks, i),
            )
        )
    return Grouping(
        model=model,
        mixed_tasks=mixed,
        single_tasks=[t for t in tasks if t not in mixed],
        placements=rows,
        economics=plan_economics(pilot, model, pairs, mixed, seed=seed),
        all_mixed_economics=plan_economics(pilot, model, pairs, tasks, seed=seed),
    )


def with_measured_plan(grouping: Grouping, pilot: Pilot, items: pd.DataFrame, *, seed: int) -> Grouping:
    """The grouping priced from its measured plan's calls, when they ran (roi/measured_plan.py)."""
    tasks = [t.name for t in pilot.tasks]
    pairs = plan_pairs(items, grouping.model, tasks, grouping.mixed_tasks)
    if pairs is None:
        return grouping
    economics = plan_economics(pilot, grouping.model, pairs, grouping.mixed_tasks, seed=seed)
    return replace(grouping, economics=economics, measured_plan=True)
