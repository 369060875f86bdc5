"""The section managers read first after the decision: "Cheaper without mixing?" (roi/levers.py)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from roi.levers import CACHE_WRITES_PER_MONTH, Lever, ModelLevers
from roi.pilot import Pilot
from roi.report.i18n import join, text
from roi.report.inputs import ReportInputs, decided_models
from roi.report.wording import estimate, lever_headline, pct


def build_levers(inputs: ReportInputs) -> dict[str, Any] | None:
    lang, models = inputs.lang, []
    for d in decided_models(inputs):
        if d.levers is None:
            continue
        models.append(
            {
                "model": d.model,
                "intro": text(lang, "levers.intro", model=d.model),
                "rows": [_row(x, d.levers, inputs.pilot, lang) for x in d.levers.levers],
                "best": lever_headline(d, lang),
                "notes": _notes(d.levers, inputs.pilot, lang),
            }
        )
    return {"models": models} if models else None


def _row(lever: Lever, levers: ModelLevers, pilot: Pilot, lang: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "option": text(lang, f"levers.option.{lever.option}"),
        "cheapest": lever.option == levers.cheapest,
        "offered": lever.plan is not None,
        "risk": _risk(lever, lang),
        "wait": text(lang, "levers.wait.batch", tasks=join(lang, lever.batch_tasks))
        if lever.batch_tasks
        else text(lang, "levers.wait.now", limit=f"{pilot.gates.max_p95_latency_s:g}"),
        "source": text(lang, f"levers.source.{lever.source}"),
        "figures": {"option": lever.option, "source": lever.source, "passes_accuracy": lever.passes_accuracy},
    }
    if lever.plan is None:
        return row | {"why": text(lang, "levers.not_offered", why=text(lang, lever.note or "na"))}
    p = lever.plan
    return row | {
        "compute": estimate(p.monthly_compute_plan_usd, "usd", lang),
        "errors": estimate(p.monthly_error_plan_usd, "usd", lang),
        "saving": text(lang, "levers.reference")
        if lever.option == "single"
        else estimate(p.net_monthly_benefit_usd, "usd", lang),
        "figures": row["figures"] | {"economics": asdict(p), "monthly_total_usd": lever.monthly_total_usd},
    }


def _risk(lever: Lever, lang: str) -> str:
    if not lever.option.startswith("mixed"):
        return text(lang, "levers.risk.none")
    return text(lang, "levers.risk.pass" if lever.passes_accuracy else "levers.risk.fail")


def _notes(levers: ModelLevers, pilot: Pilot, lang: str) -> list[str]:
    spec = next(m for m in pilot.models if m.name == levers.model)
    cached = levers.lever("single_cached")
    notes = [text(lang, cached.note)] if cached.note in ("levers.engine_caches", "levers.no_cached_price") else []
    if spec.price is not None:
        writes = f"{CACHE_WRITES_PER_MONTH:,}"
        notes.append(text(lang, "levers.caching_note", writes=writes, min_tokens=spec.price.min_cacheable_tokens))
        if spec.price.batch_discount is not None:
            notes.append(text(lang, "levers.batch_note", discount=pct(spec.price.batch_discount, lang)))
    return notes
