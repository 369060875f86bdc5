"""Which tasks may share a mixed call: a task that interferes stays on single prompts so it does not sink
the others, and the recommendation's saving is priced like any plan (roi/economics.py).

The rule is deliberately simple and stated in the report: a task is kept single when one of its own
interference gates (accuracy drop, answer swaps, unparseable answers; judged by roi/decision.py) fails
conclusively. Tasks whose evidence is merely thin stay in the group provisionally. Fewer than two tasks
left means no group at all. The remaining tasks were measured in calls that still held the excluded
ones, so the shadow stage must confirm the new grouping; the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from roi.economics import PlanEconomics, TaskPairs, plan_economics
from roi.pilot import Pilot


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
    mixed: bool
    failing_gates: list[str]
    swaps_from: dict[str, int]  # task whose gold answer this task's query received -> count
    answers_in_space_of: dict[str, int]


@dataclass(frozen=True)
class Grouping:
    model: str
    mixed_tasks: list[str]
    single_tasks: list[str]
    placements: list[TaskPlacement]
    economics: PlanEconomics  # the recommendation against all single
    all_mixed_economics: PlanEconomics  # every task mixed, as measured, for comparison


def interference_matrix(items: pd.DataFrame, model: str, tasks: Sequence[str]) -> InterferenceMatrix:
    mixed = items[(items["model"] == model) & (items["mode"] == "mixed")]

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


def recommend_grouping(
    pilot: Pilot,
    model: str,
    pairs: dict[str, TaskPairs],
    failing: Mapping[str, Sequence[str]],
    matrix: InterferenceMatrix,
    *,
    seed: int,
) -> Grouping:
    """Keep single every task with a conclusively failing interference gate (`failing[task]`); combine the
    rest when at least two remain."""
    tasks = [t.name for t in pilot.tasks]
    keep = [t for t in tasks if not failing.get(t)]
    mixed = keep if len(keep) >= 2 else []
    placements = [
        TaskPlacement(
            task=t,
            mixed=t in mixed,
            failing_gates=list(failing.get(t, ())),
            swaps_from=_row(matrix.swaps, matrix.tasks, i),
            answers_in_space_of=_row(matrix.other_space, matrix.tasks, i),
        )
        for i, t in enumerate(tasks)
    ]
    return Grouping(
        model=model,
        mixed_tasks=mixed,
        single_tasks=[t for t in tasks if t not in mixed],
        placements=placements,
        economics=plan_economics(pilot, model, pairs, mixed, seed=seed),
        all_mixed_economics=plan_economics(pilot, model, pairs, tasks, seed=seed),
    )
