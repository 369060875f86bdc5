"""A stored run read back, summarised and decided: the computation that the end of a run, `roi report`,
`roi history` and the baseline check share, and the decision in brief that history and baseline
checks keep in the store so they need not decide every earlier run again."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import pandas as pd

from roi import store
from roi.decision import Decision, decide
from roi.errors import RoiError
from roi.metrics import RunSummary, summarize
from roi.pilot import Pilot


@dataclass(frozen=True)
class RunEnding:
    """How a run being finished ends: its row still says `running` until the runner records this."""

    status: str
    finished_at: str


@dataclass(frozen=True)
class DecidedRun:
    run: dict[str, Any]  # the run's row in the store (status and finished_at as it ends, when ending)
    pilot: Pilot  # the validated pilot, as kept with the run
    items: pd.DataFrame  # store.items_frame: scored items with their call's figures
    calls: pd.DataFrame  # store.calls_frame
    summary: RunSummary
    decision: Decision

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])


def decide_run(db: sqlite3.Connection, run_id: str, ending: RunEnding | None = None) -> DecidedRun:
    """Summarise and decide `run_id` from the store."""
    row = store.get_run(db, run_id)
    if row is None:
        raise RoiError(f"no run {run_id!r} in the store")
    run = dict(row) | ({} if ending is None else {"status": ending.status, "finished_at": ending.finished_at})
    pilot = Pilot.model_validate_json(run["pilot_json"])
    items = store.items_frame(db, run_id)
    calls = store.calls_frame(db, run_id)
    summary = summarize(run_id, pilot.pilot, run["item_limit"], items, calls)
    return DecidedRun(run, pilot, items, calls, summary, decide(pilot, summary, items))


def brief(decision: Decision) -> dict[str, Any]:
    """What history and baseline checks need of a decision: stages, outcomes and counted gates."""
    return {
        "model": decision.model,
        "stage": decision.stage,
        "stage_name": decision.stage_name,
        "outcome": decision.outcome,
        "models": [
            {
                "model": m.model,
                "stage": m.stage,
                "outcome": m.outcome,
                "gates": [
                    {
                        "gate": g.gate,
                        "task": g.task,
                        "mode": g.mode,
                        "stage": g.stage,
                        "status": str(g.status),
                        "worst": g.worst,
                    }
                    for g in m.gates
                    if g.counted
                ],
            }
            for m in decision.models
        ],
    }


def decision_brief(db: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
    """A run's decision in brief: stored at the end of the run, else worked out from the store once
    (stores older than the brief) and kept. None for an unfinished run or one with no scored items."""
    row = store.get_run(db, run_id)
    if row is None:
        return None
    if row["decision_json"]:
        stored: dict[str, Any] = json.loads(row["decision_json"])
        return stored
    if row["status"] not in store.COMPLETE:
        return None
    decided = decide_run(db, run_id)
    if decided.items.empty:
        return None
    summary = brief(decided.decision)
    store.record_decision_brief(db, run_id, summary)
    return summary
