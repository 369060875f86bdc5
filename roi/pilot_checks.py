"""The mistakes a pilot file can make that its schema alone cannot see: labels outside a choice scorer's
choices, more tasks per mixed call than the pilot has, tasks the economics cannot weigh. Each is an
error (the pilot cannot measure what it means to) or a named warning (it can, but a figure will be
thin), located at file, line and field.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from roi.datasets import Example
from roi.errors import Problem
from roi.scoring import ChoiceScorer

if TYPE_CHECKING:
    from roi.pilot import Pilot, TaskData

Loc = tuple[str | int, ...]
Locate = Callable[[Loc], Problem]  # an empty Problem at the pilot file's line and field of `loc`
SHOWN = 8  # lines listed per label before "and N more"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """` (did you mean 'shots'?)`, or nothing when no option is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_structure(spec: Pilot, locate: Locate) -> list[Problem]:
    """What must hold before any data file is read: unique names, modes that can run."""
    problems = []
    for kind, names in (("models", [m.name for m in spec.models]), ("tasks", [t.name for t in spec.tasks])):
        for name in sorted({n for n in names if names.count(n) > 1}):
            second = [i for i, n in enumerate(names) if n == name][1]
            problems.append(_at(locate, (kind, second, "name"), f"'{name}' is used twice; {kind} need distinct names"))
    modes = spec.modes
    if not (modes.single.enabled or modes.mixed.enabled):
        problems.append(_at(locate, ("modes",), "enable at least one of single and mixed"))
    elif modes.mixed.enabled and len(spec.tasks) < 2:
        message = "mixed mode needs at least 2 tasks (add a task, or set modes.mixed.enabled: false)"
        problems.append(_at(locate, ("modes", "mixed") if "modes" in spec.model_fields_set else ("tasks",), message))
    return problems


def check_pilot(spec: Pilot, tasks: Sequence[TaskData], locate: Locate) -> tuple[list[Problem], list[Problem]]:
    """Errors and warnings of a validated pilot with its data loaded."""
    errors = [p for i, task in enumerate(tasks) for p in _labels_outside_choices(task, i, locate)]
    errors += _tasks_per_call(spec, locate)
    warnings = [p for i, task in enumerate(spec.tasks) if not task.monthly_volume for p in [_no_volume(i, locate)]]
    warnings += [
        _at(locate, ("models", i, "price"), _FULL_PRICE_BATCH.format(name=m.name), "batch-without-discount")
        for i, m in enumerate(spec.models)
        if m.batch and m.price is not None and m.price.batch_discount is None
    ]
    return errors, warnings


_FULL_PRICE_BATCH = (
    "model '{name}' sends batch jobs but its price has no batch_discount: its calls are priced at the full "
    "price (set e.g. batch_discount: 0.5 for a provider's half-price Batch API)"
)


def _at(locate: Locate, loc: Loc, message: str, name: str | None = None) -> Problem:
    where = locate(loc)
    return Problem(message, where.file, where.line, where.field, name)


def _labels_outside_choices(task: TaskData, index: int, locate: Locate) -> list[Problem]:
    """One error per task field and wrong label, with the data file and the lines it is on."""
    scorer = task.spec.scorer
    if not isinstance(scorer, ChoiceScorer):
        return []

    def key(label: str) -> str:
        return label.strip() if scorer.case_sensitive else label.strip().lower()

    allowed = {key(c) for c in scorer.choices}
    problems = []
    for field, rows in (("examples", task.examples), ("eval", task.eval_items)):
        wrong: dict[str, list[Example]] = {}
        for row in rows:
            if key(row.output) not in allowed:
                wrong.setdefault(row.output, []).append(row)
        for label, found in wrong.items():
            problems.append(_at(locate, ("tasks", index, field), _label_message(label, found, scorer.choices)))
    return problems


def _label_message(label: str, rows: list[Example], choices: list[str]) -> str:
    places = [(row.source or "").rpartition(":") for row in rows]
    file = places[0][0]
    lines = [line for _, _, line in places if line] if all(f == file for f, _, _ in places) else []
    if lines:
        where = f"{file}: line{'s' if len(lines) > 1 else ''} {', '.join(lines[:SHOWN])}"
    else:
        where = f"item(s) {', '.join(r.id for r in rows[:SHOWN])}"
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    return (
        f"{where}{more}: label '{label}' is not one of the scorer's choices ({', '.join(choices)})"
        f"{did_you_mean(label, choices)}; no answer could count as right"
    )


def _tasks_per_call(spec: Pilot, locate: Locate) -> list[Problem]:
    size = spec.modes.mixed.tasks_per_call
    if not spec.modes.mixed.enabled or size == "all" or size <= len(spec.tasks):
        return []
    tasks = len(spec.tasks)
    choices = "'all'" + (f" or a number from 2 to {tasks}" if tasks > 2 else "")
    message = f"{size} tasks per mixed call, but the pilot has {tasks} tasks; use {choices}"
    return [_at(locate, ("modes", "mixed", "tasks_per_call"), message)]


def _no_volume(index: int, locate: Locate) -> Problem:
    message = (
        "monthly_volume is not set (or 0): monthly costs and the ROI cannot be projected (unset) or give the "
        "task no weight (0); set how many items it handles per month"
    )
    return _at(locate, ("tasks", index, "monthly_volume"), message, "no-monthly-volume")
