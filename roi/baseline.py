"""Accepted baselines and drift: `roi accept RUN_ID` marks a run as its pilot's baseline, and every
later run is checked against it at the end of `roi run`.

A run regressed when, against its reference run,
- the decision dropped a stage (the recommended stage is lower), or
- a gate regressed: a gate (per model, gate and task) that passed in the reference does not now.
Accuracy cells that are worse beyond chance (paired interval entirely below zero, roi/compare.py) are
listed too, as what to look at, but alone they do not fail a run: the gates say what matters.

The reference is the accepted baseline; before any is accepted it is the pilot's previous complete
run with the same --limit (so a first cron job still notices a drop). `roi run` exits 3 on a regression.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from roi import store
from roi.compare import compare_runs
from roi.decision import Status
from roi.errors import Problem, RoiError
from roi.formats import p_value
from roi.run_decision import decision_brief


@dataclass(frozen=True)
class Regression:
    kind: str  # stage | gate | accuracy
    model: str | None
    what: str  # gate name, task/mode, or "decision"
    before: str
    now: str

    def describe(self) -> str:
        where = f"{self.model}: " if self.model else ""
        return f"{where}{self.what} {self.before} -> {self.now}"


@dataclass(frozen=True)
class BaselineCheck:
    run_id: str
    reference: str | None  # the run compared with (None: nothing to compare with yet)
    reference_is_baseline: bool
    decision_before: dict[str, Any] | None  # brief of the reference's decision
    decision_now: dict[str, Any] | None
    regressions: list[Regression] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        """A stage dropped or a gate regressed: `roi run` exits 3."""
        return any(r.kind in ("stage", "gate") for r in self.regressions)

    @property
    def decision_changed(self) -> bool:
        if self.decision_before is None or self.decision_now is None:
            return False
        keys = ("model", "stage", "outcome")
        return any(self.decision_before[k] != self.decision_now[k] for k in keys)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"regressed": self.regressed, "decision_changed": self.decision_changed}


# ---------------------------------------------------------------- accepting


def accept(db: sqlite3.Connection, run_id: str) -> str:
    """Make `run_id` its pilot's baseline; returns the pilot. Only a complete run can be accepted."""
    row = store.get_run(db, run_id)
    if row is None:
        raise RoiError([Problem(f"no run {run_id!r} in the store", None, None, "RUN_ID")])
    if row["status"] not in store.COMPLETE:
        raise RoiError(
            [Problem(f"run {run_id} is {row['status']}: only a complete run can be a baseline", None, None, "RUN_ID")]
        )
    store.add_baseline(db, str(row["pilot"]), run_id, datetime.now(UTC).isoformat(timespec="seconds"))
    return str(row["pilot"])


# ---------------------------------------------------------------- checking


def _gate_map(decision: dict[str, Any]) -> dict[tuple[str, str, str | None], str]:
    """Status per (model, gate, task or mode): a gate on one mode (failed calls) is told apart by its mode."""
    return {
        (m["model"], g["gate"], g["task"] or g.get("mode")): g["status"] for m in decision["models"] for g in m["gates"]
    }


def decision_regressions(before: dict[str, Any], now: dict[str, Any]) -> list[Regression]:
    """A dropped stage, and every gate that passed before and does not now (same model, gate, task)."""
    found: list[Regression] = []
    if now["stage"] < before["stage"]:
        found.append(Regression("stage", now["model"], "decision", f"stage {before['stage']}", f"stage {now['stage']}"))
    was, is_now = _gate_map(before), _gate_map(now)
    for key in sorted(was.keys() & is_now.keys(), key=str):
        if was[key] == Status.PASS.value and is_now[key] != Status.PASS.value:
            model, gate, task = key
            found.append(Regression("gate", model, gate if task is None else f"{gate} ({task})", was[key], is_now[key]))
    return found


def check(db: sqlite3.Connection, run_id: str, now: dict[str, Any] | None) -> BaselineCheck:
    """Compare a finished run, whose decision in brief is `now`, with its pilot's baseline (else its
    previous complete run)."""
    row = store.get_run(db, run_id)
    if row is None:
        raise RoiError(f"no run {run_id!r} in the store")
    baseline = store.current_baseline(db, str(row["pilot"]))
    reference = baseline if baseline is not None else store.previous_complete_run(db, run_id)
    if reference is None or reference == run_id:
        return BaselineCheck(run_id, None, False, None, now)
    before = decision_brief(db, reference)
    found = decision_regressions(before, now) if before is not None and now is not None else []
    for cell in compare_runs(db, reference, run_id).cells:
        if cell.worse:
            found.append(
                Regression(
                    "accuracy",
                    cell.model,
                    f"accuracy {cell.task}/{cell.mode}",
                    f"{cell.accuracy_a.value:.0%}",
                    f"{cell.accuracy_b.value:.0%} (paired diff {cell.diff.diff:+.0%}, n={cell.shared},"
                    f" McNemar p={p_value(cell.diff.mcnemar_p)})",
                )
            )
    return BaselineCheck(run_id, reference, baseline is not None, before, now, found)
