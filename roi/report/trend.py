"""The report's trend section: the pilot's complete runs over time with the accepted baseline
marked, and what regressed against the baseline (roi/baseline.py). Left out of the report when the
pilot has no earlier run and no baseline. Registered with the report by importing this module."""

from __future__ import annotations

from typing import Any

from roi.history import HistoryRow
from roi.report import charts
from roi.report.i18n import words as section_words
from roi.report.sections import ReportInputs, Section, register
from roi.report.wording import pct

MAX_RUNS = 12


def _label(row: HistoryRow) -> str:
    # Date, time and the run id's random tail: runs of one minute stay apart.
    return f"{row.started_at[5:16].replace('T', ' ')} {row.run_id[-6:]}" + (" ★" if row.baseline else "")


def _bars(row: HistoryRow, modes: list[str], lang: str) -> list[dict[str, Any]]:
    bars: list[dict[str, Any]] = []
    for mode in modes:
        rate = row.accuracy.get(mode)
        if rate is None or rate.n == 0:
            bars.append({"value": None, "low": None, "high": None, "text": "—"})
            continue
        shown = f"{pct(rate.value, lang)} (n={rate.n})"
        bars.append({"value": rate.value, "low": rate.low, "high": rate.high, "text": shown})
    return bars


def build_trend(inputs: ReportInputs) -> dict[str, Any] | None:
    lang, check = inputs.lang, inputs.evaluation.check
    words = section_words(lang, "trend")
    rows = [r for r in inputs.evaluation.history if r.complete or r.run_id == inputs.run_id]
    start = next(i for i, r in enumerate(rows) if r.run_id == inputs.run_id)  # newest first: skip later runs
    rows = rows[start : start + MAX_RUNS][::-1]  # oldest first
    if len(rows) < 2 and check.reference is None:
        return None
    modes = sorted({m for r in rows for m in r.accuracy}, key=lambda m: m != "single")
    current = next(r for r in rows if r.run_id == inputs.run_id)
    table = [
        {
            "run_id": r.run_id,
            "started": r.started_at[:16].replace("T", " ") + " UTC",
            "baseline": r.baseline,
            "current": r.run_id == inputs.run_id,
            "stage": "—" if r.decision is None else f"{r.decision['stage']} {r.decision['stage_name']}",
            "outcome": "—" if r.decision is None else r.decision["outcome"],
            "settings": _settings_word(r, current, words),
            "accuracy": [
                "—" if r.accuracy.get(m) is None else f"{pct(r.accuracy[m].value, lang)} (n={r.accuracy[m].n})"
                for m in modes
            ],
        }
        for r in rows
    ]
    if check.reference is None:
        note = words["nothing"]
    else:
        note = words["vs_baseline" if check.reference_is_baseline else "no_baseline"].format(reference=check.reference)
    chart_rows = [{"label": _label(r), "bars": _bars(r, modes, lang)} for r in rows]
    return {
        "note": note,
        "modes": modes,
        "rows": table,
        "reference": check.reference,
        "reference_is_baseline": check.reference_is_baseline,
        "regressed": check.regressed,
        "regressions": [{"kind": g.kind, "text": g.describe()} for g in check.regressions],
        "settings": _settings_note(inputs, words),
        "charts": {"trend": charts.interval_bars(words["chart"], chart_rows, modes)},
    }


def _settings_word(row: HistoryRow, current: HistoryRow, words: dict[str, str]) -> str:
    """Whether a run asked with this run's pilot settings."""
    if row.fingerprint is None or current.fingerprint is None:
        return words["not_kept"]
    return words["same" if row.fingerprint == current.fingerprint else "changed"]


def _settings_note(inputs: ReportInputs, words: dict[str, str]) -> dict[str, Any] | None:
    diff = inputs.evaluation.settings
    if diff is None or diff.same:
        return None
    key = "settings_changed" if diff.known else "settings_unknown"
    return {"text": words[key].format(reference=diff.against), "changes": diff.changes}


register(Section("trend", "sections/trend.html.j2", build_trend), after="gates")
