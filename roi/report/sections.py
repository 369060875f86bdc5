"""The report's sections: each is a builder that turns the run into plain data, and one include template
(templates/sections/<id>.html.j2) that shows it.

To add a section: write `templates/sections/<id>.html.j2` (it receives `data`, `lang`, and the helpers
`tr(key, **params)` and `svg(canvas)`), write a builder `(ReportInputs) -> dict | None` (None leaves the
section out, e.g. when a run has no probe data), and `register(Section(...), after="...")`. Everything
the builder returns lands in report.json too, except the `charts` key (drawing instructions, not
figures). The builders of the standard sections live in roi/report/money.py and roi/report/evidence.py.
"""

from __future__ import annotations

import json
from typing import Any

from roi.economics import RESAMPLES
from roi.formats import usd
from roi.report.evidence import (
    build_accuracy,
    build_failures,
    build_gates,
    build_interference,
    build_latency,
)
from roi.report.i18n import join, text
from roi.report.inputs import Builder, ReportInputs, Section
from roi.report.levers_section import build_levers
from roi.report.money import build_cost, build_grouping, build_roi
from roi.report.probe_section import report_section
from roi.report.wording import pct

__all__ = ["SECTIONS", "Builder", "ReportInputs", "Section", "register"]


def build_operations(inputs: ReportInputs) -> dict[str, Any]:
    lang, pilot = inputs.lang, inputs.pilot
    ops, gates = pilot.operations, pilot.gates
    owner = ops.rollout_owner or pilot.owner
    reviewers = join(lang, ops.reviewers) if ops.reviewers else text(lang, "ops.not_named")
    contact = ops.escalation_contact or text(lang, "ops.not_named")
    checklist = [
        text(lang, "ops.check.gates"),
        text(lang, "ops.check.owner", owner=owner),
        text(lang, "ops.check.shadow", share=pct(ops.review_share, lang)),
        text(lang, "ops.check.limited", share=pct(ops.review_share, lang)),
        text(
            lang,
            "ops.check.thresholds",
            drop=pct(gates.max_accuracy_drop, lang),
            swaps=pct(gates.max_swap_rate, lang),
            unparseable=pct(gates.max_unparseable_rate, lang),
            latency=f"{gates.max_p95_latency_s:g}",
        ),
        text(lang, "ops.check.audit", days=ops.audit_every_days),
        text(lang, "ops.check.calibration"),
    ]
    path = [
        text(lang, f"ops.step.fallback.{ops.fallback}"),
        text(lang, "ops.step.reviewer", reviewers=reviewers),
        text(
            lang,
            "ops.step.escalate",
            contact=ops.escalation_contact or text(lang, "ops.no_contact"),
            hours=f"{ops.escalation_hours:g}",
        ),
        text(lang, "ops.step.owner", owner=owner),
    ]
    return {
        "owner": owner,
        "reviewers": reviewers,
        "contact": contact,
        "named": bool(ops.escalation_contact and ops.reviewers),
        "checklist": checklist,
        "doubtful": text(lang, "ops.doubtful"),
        "path": path,
        "operations": pilot.operations.model_dump(),
    }


def build_method(inputs: ReportInputs) -> dict[str, Any]:
    lang, pilot, run = inputs.lang, inputs.pilot, inputs.run
    env = inputs.environment
    modes = pilot.modes
    models = []
    for m in pilot.models:
        versions = env.get(m.name, {})
        cost = (  # formats.usd: never in scientific notation, however small a price
            f"{usd(m.cost.usd_per_hour)}/h"
            if m.cost
            else text(lang, "method.price_per_1m", input=usd(m.price.input_per_1m), output=usd(m.price.output_per_1m))
            if m.price
            else text(lang, "unknown")
        )
        models.append(
            {
                "name": m.name,
                "backend": m.backend,
                "model": m.model,
                "cost": cost,
                "versions": ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
                if isinstance(versions, dict)
                else str(versions),
            }
        )
    host = ", ".join(str(env[k]) for k in ("host", "platform", "python") if k in env)
    return {
        "models": models,
        "seed": pilot.seed,
        "pilot_path": run["pilot_path"],
        "pilot_sha256": run["pilot_sha256"],
        "run_id": inputs.run_id,
        "started": run["started_at"],
        "finished": run["finished_at"] or "",
        "where": host,
        "limit": str(run["item_limit"]) if run["item_limit"] else text(lang, "method.no_limit"),
        "modes": text(
            lang,
            "method.modes_text",
            shots=modes.single.shots,
            shots_per_task=modes.mixed.shots_per_task,
            tasks_per_call=text(lang, "method.all_tasks")
            if modes.mixed.tasks_per_call == "all"
            else modes.mixed.tasks_per_call,
        ),
        "stats": text(lang, "method.stats_text", resamples=RESAMPLES, seed=pilot.seed),
        "rebuild": text(lang, "method.rebuild_command", run_id=inputs.run_id),
        "environment": json.loads(json.dumps(env, default=str)),
    }


SECTIONS: list[Section] = [
    Section("levers", "sections/levers.html.j2", build_levers),
    Section("roi", "sections/roi.html.j2", build_roi),
    Section("gates", "sections/gates.html.j2", build_gates),
    Section("accuracy", "sections/accuracy.html.j2", build_accuracy),
    Section("interference", "sections/interference.html.j2", build_interference),
    Section("latency", "sections/latency.html.j2", build_latency),
    Section("cost", "sections/cost.html.j2", build_cost),
    Section("grouping", "sections/grouping.html.j2", build_grouping),
    Section("failures", "sections/failures.html.j2", build_failures),
    Section("operations", "sections/operations.html.j2", build_operations),
    Section("method", "sections/method.html.j2", build_method),
]


def register(section: Section, *, after: str | None = None) -> None:
    """Add (or replace) a section, after the one with id `after` (default: before `method`)."""
    SECTIONS[:] = [s for s in SECTIONS if s.id != section.id]
    anchor = after if after is not None else SECTIONS[-2].id if SECTIONS[-1].id == "method" else SECTIONS[-1].id
    index = next(i for i, s in enumerate(SECTIONS) if s.id == anchor) + 1
    SECTIONS.insert(index, section)


def _build_probe(inputs: ReportInputs) -> dict[str, Any] | None:
    """The superposition probe's calibration chart and reading (roi/report/probe_section.py)."""
    return report_section(inputs.evaluation.probe, inputs.lang)


register(Section("probe", "sections/probe.html.j2", _build_probe), after="interference")
