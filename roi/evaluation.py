"""Evaluate a finished run once: everything the end of `roi run`, `roi report RUN_ID` and the report
itself need, read from the store in one pass.

The runner calls `evaluate_run` once when a run's calls are done, records the decision and writes
summary.json from the result; the report renders from it and never opens the store. Anything new
that judges a finished run adds its figures here, not in a second pass.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from roi import baseline, store
from roi.baseline import BaselineCheck
from roi.briefing import Briefing, manager_briefing
from roi.fingerprint import SettingsDiff, settings_diff
from roi.history import HistoryRow, history, history_row
from roi.levers import with_levers
from roi.probe.figures import MixtureFigures, stored_figures
from roi.run_decision import DecidedRun, RunEnding, brief, decide_run


@dataclass(frozen=True)
class RunEvaluation(DecidedRun):
    """A stored run summarised and decided, with its probe figures, its baseline check and its
    pilot's history (newest first, this run's row from this evaluation)."""

    check: BaselineCheck
    probe: list[MixtureFigures] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    settings: SettingsDiff | None = None  # against the run `check` compares with (None: no such run)
    briefing: Briefing | None = None  # the manager's summary at the top of the report

    @property
    def environment(self) -> dict[str, Any]:
        """Library versions, device and host as the run recorded them."""
        env: dict[str, Any] = json.loads(self.run["environment_json"] or "{}")
        return env

    @property
    def decision_brief(self) -> dict[str, Any]:
        """The decision in brief, as history and later baseline checks read it."""
        return brief(self.decision)

    def summary_data(self) -> dict[str, Any]:
        """summary.json's figures: the summary, and the probe's when the run has them."""
        figures = {"probe": [asdict(f) for f in self.probe]} if self.probe else {}
        return self.summary.to_dict() | figures


def evaluate_run(db: sqlite3.Connection, run_id: str, ending: RunEnding | None = None) -> RunEvaluation:
    """Summarise, decide and compare `run_id` with its baseline; `ending` gives the status and end time
    of a run being finished (its row still says `running`)."""
    decided = decide_run(db, run_id, ending)
    decided = replace(decided, decision=with_levers(decided.pilot, decided.items, decided.calls, decided.decision))
    now = brief(decided.decision)
    evaluation = RunEvaluation(
        **{f.name: getattr(decided, f.name) for f in fields(decided)},
        check=baseline.check(db, run_id, now),
        probe=stored_figures(db, run_id, decided.pilot),
    )
    return replace(
        evaluation,
        history=_history(db, evaluation, now),
        settings=_settings(db, evaluation),
        briefing=manager_briefing(decided.pilot, decided.summary, decided.decision),
    )


def _settings(db: sqlite3.Connection, evaluation: RunEvaluation) -> SettingsDiff | None:
    """Whether the reference run (baseline or previous run) asked with the same pilot settings."""
    reference = evaluation.check.reference
    if reference is None:
        return None
    return settings_diff(
        reference, store.run_settings(store.get_run(db, reference)), store.run_settings(evaluation.run)
    )


def _history(db: sqlite3.Connection, evaluation: RunEvaluation, now: dict[str, Any]) -> list[HistoryRow]:
    """The pilot's runs from the store, this run's row made from `evaluation` (the store has no
    summary of a run being finished yet)."""
    pilot = evaluation.run["pilot"]
    accepted = store.current_baseline(db, pilot) == evaluation.run_id
    own = history_row(
        evaluation.run, evaluation.summary_data(), now, store.call_counts(db, evaluation.run_id), accepted
    )
    return [own if r.run_id == evaluation.run_id else r for r in history(db, pilot)]
