"""The measured plan: when the recommended grouping (roi/grouping.py) differs from the mixed calls the
pilot ran, its groups run as calls of their own (mode `plan`) on the same items, so the plan's accuracy,
interference and cost are measured instead of extrapolated from calls that also held other tasks.

The grouping is decided from the run's single and mixed calls once a model's have all been made (the
same computation as the run's end, so a resumed run finds the same groups and repeats only the plan
calls not yet finished). Nothing is planned when a model's calls stopped short (--max-cost, the run
deadline): a grouping from part of the evidence would be a guess.
"""

from __future__ import annotations

import sqlite3

from roi.pilot import LoadedPilot, ModelSpec
from roi.prompts import PromptCall, plan_calls
from roi.run_decision import decide_run


def calls_for(
    db: sqlite3.Connection, run_id: str, pilot: LoadedPilot, model: ModelSpec, limit: int | None
) -> list[PromptCall]:
    """The plan calls `model` needs (finished or not): none when both modes were not compared or the
    pilot's own mixed calls already hold the recommended grouping."""
    modes = pilot.spec.modes
    if not (modes.single.enabled and modes.mixed.enabled):
        return []
    decided = decide_run(db, run_id).decision
    mine = next(m for m in decided.models if m.model == model.name)
    if mine.outcome == "not_compared":
        return []
    return plan_calls(pilot, mine.grouping.mixed_tasks, limit)
