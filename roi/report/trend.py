"""The report's trend section (issue 7): the pilot's complete runs over time with the accepted baseline
marked, and what regressed against the baseline (roi/baseline.py). Left out of the report when the
pilot has no earlier run and no baseline. Registered with the report by importing this module."""

from __future__ import annotations

from typing import Any

from roi.history import HistoryRow
from roi.report import charts
from roi.report.sections import ReportInputs, Section, register
from roi.report.wording import pct

MAX_RUNS = 12
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Trend against the baseline",
        "chart": "Accuracy per run, all tasks pooled (95% interval); ★ marks the accepted baseline",
        "run": "Run",
        "started": "Started",
        "stage": "Stage",
        "outcome": "Outcome",
        "baseline": "baseline",
        "no_baseline": "No run is accepted as baseline yet (roi accept RUN_ID); this run is compared with the "
        "previous complete run, {reference}.",
        "vs_baseline": "This run is compared with the accepted baseline, {reference}.",
        "nothing": "Nothing to compare with: this is the pilot's first complete run at this item limit.",
        "regressed": "What regressed",
        "none": "Nothing regressed: no stage dropped, no gate that passed fails now, no task is worse beyond chance.",
        "gate_note": "A dropped stage or a regressed gate makes roi run exit with code 3.",
        "settings": "Settings",
        "same": "same",
        "changed": "changed",
        "not_kept": "not kept",
        "settings_changed": "The pilot's settings differ from {reference}'s, so a change in results may come from "
        "them rather than from the model:",
        "settings_unknown": "The settings of {reference} were not recorded (an older run): they may differ.",
    },
    "ja": {
        "title": "ベースラインとの推移",
        "chart": "実行ごとの正答率（全タスク合算、95%区間）。★は承認済みベースライン",
        "run": "実行",
        "started": "開始",
        "stage": "段階",
        "outcome": "結果",
        "baseline": "ベースライン",
        "no_baseline": "承認済みのベースラインはまだありません（roi accept RUN_ID）。"
        "直前の完了した実行 {reference} と比較しています。",
        "vs_baseline": "承認済みベースライン {reference} と比較しています。",
        "nothing": "比較対象がありません。この項目数上限で最初の完了した実行です。",
        "regressed": "悪化した点",
        "none": "悪化はありません。段階の低下、合格していたゲートの不合格、偶然を超える正答率の低下はありません。",
        "gate_note": "段階の低下またはゲートの悪化があると roi run は終了コード 3 を返します。",
        "settings": "設定",
        "same": "同じ",
        "changed": "変更あり",
        "not_kept": "記録なし",
        "settings_changed": "パイロットの設定が {reference} と異なります。"
        "結果の変化はモデルではなく設定の変更による可能性があります:",
        "settings_unknown": "{reference} の設定は記録されていません（古い実行）。異なる可能性があります。",
    },
}


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
    words = WORDS[lang]
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
        "t": words,  # section wording (kept out of report.json like the page's `t`)
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


register(
    Section("trend", "sections/trend.html.j2", build_trend, titles={k: v["title"] for k, v in WORDS.items()}),
    after="gates",
)
