"""Sections with the evidence: gates, accuracy, interference, latency and sample failures."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from roi.economics import Estimate
from roi.formats import p_value
from roi.gates import GateResult
from roi.grouping import interference_matrix
from roi.metrics import answered
from roi.report import charts
from roi.report.i18n import text
from roi.report.inputs import ReportInputs, decided_models
from roi.report.wording import (
    gate_figure,
    gate_label,
    gate_measured,
    gate_n,
    gate_reason,
    pct,
    seconds,
    stage_name,
)
from roi.stats import LEVEL, PairedDiff, simultaneous_level

FAILURE_SAMPLES = 12


def build_gates(inputs: ReportInputs) -> dict[str, Any]:
    lang = inputs.lang
    models = []
    for d in decided_models(inputs):
        rows = [
            {
                "stage": g.stage,
                "stage_name": stage_name(g.stage, lang),
                "gate": g.gate,
                "label": gate_label(g, lang),
                "task": g.task,
                "measured": gate_measured(g, lang),
                "limit": _limit(g, lang),
                "n": gate_n(g, lang),
                "status": g.status.value,
                "status_text": text(lang, f"status.{g.status.value}"),
                "reason": gate_reason(g, lang, d.grouping)
                if g.counted
                else f"{text(lang, 'reason.not_counted')} · {gate_reason(g, lang, d.grouping)}",
                "counted": g.counted,
                "items_needed": g.items_needed,
                "figures": asdict(g),
            }
            for g in sorted(d.gates, key=lambda g: g.stage)
        ]
        stages = [
            {
                "stage": s.stage,
                "name": stage_name(s.stage, lang),
                "status": s.status.value,
                "status_text": text(lang, f"status.{s.status.value}"),
            }
            for s in d.stages
        ]
        models.append(
            {
                "model": d.model,
                "title": text(lang, "gates.model", model=d.model),
                "rows": rows,
                "stages": stages,
                "stage": d.stage,
            }
        )
    tasks = len(inputs.pilot.tasks)
    level = pct(simultaneous_level(LEVEL, tasks), lang)
    return {"models": models, "note": text(lang, "gates.note", tasks=tasks, level=level)}


def _limit(g: GateResult, lang: str) -> str:
    if g.limit is None:
        return ""
    sign = "≤ " if g.upper_limit else "≥ "
    return sign + gate_figure(g, g.limit, lang)


def build_accuracy(inputs: ReportInputs) -> dict[str, Any]:
    lang = inputs.lang
    models = []
    for model in [m.name for m in inputs.pilot.models]:
        cells = {(c.task, c.mode): c for c in inputs.summary.cells if c.model == model}
        rows, bars, diffs = [], [], []
        for task in [t.name for t in inputs.pilot.tasks]:
            single, mixed = cells.get((task, "single")), cells.get((task, "mixed"))
            d = mixed.vs_single if mixed else None
            fall = accuracy_drop(d)  # single − mixed, as the gates judge it: positive when mixed is worse
            row = {
                "task": task,
                "single": _rate_text(single.accuracy if single else None, lang),
                "mixed": _rate_text(mixed.accuracy if mixed else None, lang),
                "diff": text(lang, "na") if d is None or fall.value is None else _drop_text(fall, d.n, lang),
                "mcnemar": "" if d is None or d.mcnemar_p is None else p_value(d.mcnemar_p),
                "discordant": "" if d is None else f"{d.a_only} / {d.b_only}",
                "figures": {"single": asdict(single) if single else None, "mixed": asdict(mixed) if mixed else None},
            }
            rows.append(row)
            bars.append({"label": task, "bars": [_bar(single, lang), _bar(mixed, lang)]})
            diffs.append({"label": task, "value": fall.value, "low": fall.low, "high": fall.high, "text": row["diff"]})
        series = [text(lang, "mode.single"), text(lang, "mode.mixed")]
        margin = inputs.pilot.gates.max_accuracy_drop
        models.append(
            {
                "model": model,
                "rows": rows,
                "charts": {
                    "accuracy": charts.interval_bars(f"{model} · {text(lang, 'accuracy.chart')}", bars, series),
                    "diff": charts.forest(
                        f"{model} · {text(lang, 'accuracy.diff_chart', limit=pct(margin))}",
                        diffs,
                        -margin,  # the dashed line at +limit: a drop beyond it fails the gate
                    ),
                },
            }
        )
    return {"models": models}


def accuracy_drop(d: PairedDiff | None) -> Estimate:
    """Single − mixed accuracy with its interval, from the mixed − single paired change."""
    if d is None or d.diff is None:
        return Estimate(None, None, None)
    return Estimate(-d.diff, None if d.high is None else -d.high, None if d.low is None else -d.low)


def _drop_text(fall: Estimate, n: int, lang: str) -> str:
    return f"{pct(fall.value, lang, True)} [{pct(fall.low, lang, True)}, {pct(fall.high, lang, True)}] n={n}"


def _rate_text(rate: Any, lang: str) -> str:
    if rate is None or rate.value is None:
        return text(lang, "na")
    return f"{pct(rate.value, lang)} [{pct(rate.low, lang)}, {pct(rate.high, lang)}] n={rate.n}"


def _bar(cell: Any, lang: str) -> dict[str, Any]:
    if cell is None:
        return {"value": None, "low": None, "high": None, "text": text(lang, "na")}
    a = cell.accuracy
    return {"value": a.value, "low": a.low, "high": a.high, "text": _rate_text(a, lang)}


def build_interference(inputs: ReportInputs) -> dict[str, Any]:
    lang = inputs.lang
    models = []
    for d in decided_models(inputs):
        m = d.grouping
        matrix = _matrix(inputs, d.model)
        any_seen = any(v for row in matrix["swaps"] + matrix["other_space"] for v in row)
        rows_caption, cols_caption = text(lang, "interference.rows"), text(lang, "interference.cols")
        models.append(
            {
                "model": m.model,
                "matrix": matrix,
                "seen": any_seen,
                "charts": {
                    "swaps": charts.heatmap(
                        f"{d.model} · {text(lang, 'interference.swaps', row=rows_caption, col=cols_caption)}",
                        matrix["tasks"],
                        matrix["swaps"],
                        matrix["items"],
                        rows_caption,
                        cols_caption,
                    ),
                    "space": charts.heatmap(
                        f"{d.model} · {text(lang, 'interference.space')}",
                        matrix["tasks"],
                        matrix["other_space"],
                        matrix["items"],
                        rows_caption,
                        cols_caption,
                    ),
                },
            }
        )
    return {"models": models}


def _matrix(inputs: ReportInputs, model: str) -> dict[str, Any]:
    return asdict(interference_matrix(inputs.items, model, [t.name for t in inputs.pilot.tasks]))


def build_latency(inputs: ReportInputs) -> dict[str, Any]:
    lang, rows = inputs.lang, []
    for model in [m.name for m in inputs.pilot.models]:
        for mode in ("single", "mixed"):
            # a failed call's wait is no answer's latency: left out, as the gate leaves it out
            own = answered(inputs.items[(inputs.items["model"] == model) & (inputs.items["mode"] == mode)])
            lat = own["latency_s"]
            values = lat.to_numpy(dtype=float)
            if not values.size:
                continue
            q = {k: float(np.percentile(values, p)) for k, p in (("p25", 25), ("p50", 50), ("p75", 75), ("p95", 95))}
            rows.append(
                {
                    "label": f"{model} · {text(lang, f'mode.{mode}')}",
                    "cls": "s0" if mode == "single" else "s1",
                    "min": float(values.min()),
                    "max": float(values.max()),
                    **q,
                    "n": int(values.size),
                    "text": f"p50 {seconds(q['p50'])} · p95 {seconds(q['p95'])} · n={values.size}",
                }
            )
    limit = inputs.pilot.gates.max_p95_latency_s
    title = text(lang, "latency.chart", limit=f"{limit:g}")
    note = text(lang, "latency.note") + " " + text(lang, "latency.level_note")
    if "machine_s" in inputs.calls and inputs.calls["machine_s"].notna().any():
        note += " " + text(lang, "latency.modelled_note")
    reused = int(inputs.calls["reused"].sum())
    if reused:
        note += " " + text(lang, "latency.reused_note", reused=reused, calls=len(inputs.calls))
    return {"rows": rows, "note": note, "charts": {"latency": charts.boxes(title, rows, limit)}}


def build_failures(inputs: ReportInputs) -> dict[str, Any]:
    lang, items = inputs.lang, inputs.items
    wrong = items[items["correct"] == 0].copy()
    single_right = set(
        map(tuple, items[(items["mode"] == "single") & (items["correct"] == 1)][["model", "task", "item_id"]].values)
    )
    wrong["single_right"] = [
        (r.model, r.task, r.item_id) in single_right and r.mode == "mixed" for r in wrong.itertuples()
    ]
    wrong["order"] = (~wrong["single_right"]).astype(int) * 2 + (wrong["mode"] == "single").astype(int)
    # Take tasks in turn within each kind of failure, so one bad task does not fill the whole sample.
    wrong = wrong.sort_values(["order", "task", "item_id"])
    wrong["turn"] = wrong.groupby(["order", "model", "task"]).cumcount()
    raw = dict(zip(inputs.calls["call_id"], inputs.calls["raw_output"], strict=True))
    rows = []
    for r in wrong.sort_values(["order", "turn", "task"]).head(FAILURE_SAMPLES).itertuples():
        flags = []
        if r.single_right:
            flags.append(text(lang, "failures.single_right"))
        if isinstance(r.swap_with, str):
            flags.append(text(lang, "failures.swap", task=r.swap_with))
        if isinstance(r.other_task_space, str):
            flags.append(text(lang, "failures.space", task=r.other_task_space))
        if isinstance(getattr(r, "error", None), str):
            flags.append(text(lang, "failures.call_failed", error=str(r.error)[:120]))
        answer = r.answer if isinstance(r.answer, str) else None
        rows.append(
            {
                "model": r.model,
                "task": r.task,
                "mode": text(lang, f"mode.{r.mode}"),
                "item_id": str(r.item_id),
                "input": str(r.input),
                "expected": str(r.gold),
                "got": answer,
                "raw": None if answer is not None else str(raw.get(r.call_id) or "")[:300],
                "flags": "; ".join(flags),
            }
        )
    shown = text(lang, "failures.shown", shown=len(rows), total=len(wrong))
    return {"rows": rows, "total": len(wrong), "note": f"{text(lang, 'failures.note')} {shown}"}
