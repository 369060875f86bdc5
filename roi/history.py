"""`roi history [PILOT]`: past runs, newest first, with their models, decision and headline figures
(accuracy per mode pooled over models and tasks, with interval and n; what the run's own calls cost,
None if unknown)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from roi import store
from roi.run_decision import decision_brief
from roi.stats import Rate, wilson
from roi.store import CallCounts


@dataclass(frozen=True)
class HistoryRow:
    run_id: str
    pilot: str
    started_at: str
    finished_at: str | None
    status: str
    item_limit: int | None
    models: list[str]
    baseline: bool  # the pilot's accepted baseline
    decision: dict[str, Any] | None  # model, stage, stage_name, outcome (None: no decision)
    accuracy: dict[str, Rate]  # per mode, pooled over models and tasks
    cost_usd: float | None  # what the run's own calls cost (reused answers cost nothing); None: unknown
    calls: int
    reused_calls: int  # answered from the response cache (an earlier run's call)
    fingerprint: str | None = None  # of the pilot settings the run used (roi/fingerprint.py); None: not kept

    @property
    def complete(self) -> bool:
        """Every call was sent (with or without failures): a run history and baselines compare."""
        return self.status in store.COMPLETE


def _accuracy(summary: dict[str, Any]) -> dict[str, Rate]:
    pooled: dict[str, list[int]] = {}
    for cell in summary.get("cells", []):
        k_n = pooled.setdefault(cell["mode"], [0, 0])
        k_n[0] += int(cell["accuracy"]["k"])
        k_n[1] += int(cell["accuracy"]["n"])
    return {mode: wilson(k, n) for mode, (k, n) in sorted(pooled.items())}


def history_row(
    run: dict[str, Any],
    summary: dict[str, Any],
    brief: dict[str, Any] | None,
    calls: CallCounts,
    baseline: bool,
) -> HistoryRow:
    """A run's row from its store row, its summary (as in summary.json; empty when it has none), its
    decision in brief and its calls."""
    pilot_spec = json.loads(run["pilot_json"])
    return HistoryRow(
        run_id=run["run_id"],
        pilot=run["pilot"],
        started_at=run["started_at"],
        finished_at=run["finished_at"],
        status=run["status"],
        item_limit=run["item_limit"],
        models=[m["name"] for m in pilot_spec.get("models", [])],
        baseline=baseline,
        decision=None if brief is None else {k: brief[k] for k in ("model", "stage", "stage_name", "outcome")},
        accuracy=_accuracy(summary),
        cost_usd=calls.spent_usd,
        calls=calls.calls,
        reused_calls=calls.reused,
        fingerprint=run.get("pilot_fingerprint"),
    )


def _row(db: sqlite3.Connection, run: sqlite3.Row, baselines: dict[str, str | None]) -> HistoryRow:
    summary: dict[str, Any] = json.loads(run["summary_json"]) if run["summary_json"] else {}
    is_baseline = baselines.get(run["pilot"]) == run["run_id"]
    brief = decision_brief(db, run["run_id"])
    return history_row(dict(run), summary, brief, store.call_counts(db, run["run_id"]), is_baseline)


def history(db: sqlite3.Connection, pilot: str | None = None, limit: int | None = None) -> list[HistoryRow]:
    """Runs of `pilot` (every pilot when None), newest first."""
    runs = store.runs_of(db, pilot, limit)
    baselines = {p: store.current_baseline(db, p) for p in {r["pilot"] for r in runs}}
    return [_row(db, r, baselines) for r in runs]


def to_json(rows: list[HistoryRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
