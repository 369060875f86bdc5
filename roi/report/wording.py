"""Numbers and sentences for people: formats, the one-sentence decision and each gate's reason, in the
report's language. Used by the report and by the console's decision line."""

from __future__ import annotations

import math

from roi import formats
from roi.decision import STAGES, Decision, ModelDecision, Status
from roi.economics import Estimate, PlanEconomics
from roi.gates import GATES, GateResult
from roi.grouping import KEEP_SINGLE, UNDECIDED, Grouping
from roi.levers import MIXED_OPTIONS
from roi.report.i18n import MESSAGES, join, text


def pct(value: float | None, lang: str = "en", signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return text(lang, "unknown")
    rounded = round(value * 100, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    shown = f"{rounded:+,.1f}%" if signed and rounded else f"{rounded:,.1f}%"
    return shown.replace(".0%", "%").replace("-", "−")


def usd(value: float | None, lang: str = "en") -> str:
    """Money in currency format, never in scientific notation (roi/formats.py)."""
    return formats.usd(value, text(lang, "unknown"))


def seconds(value: float | None, lang: str = "en") -> str:
    """Two decimals; a figure under 0.01 s with its first digit, so a limit of 0.001 s is not "0.00 s"."""
    if value is None:
        return text(lang, "unknown")
    return f"{value:.2f} s" if value == 0 or abs(value) >= 0.01 else f"{value:.1g} s"


def number(value: float | None, lang: str = "en", digits: int = 1) -> str:
    return text(lang, "unknown") if value is None else f"{value:,.{digits}f}"


def estimate(e: Estimate, fmt: str, lang: str) -> str:
    """`value [low, high]` in the given format (pct, usd, months, ratio)."""

    def one(x: float | None) -> str:
        if fmt == "pct":
            return pct(x, lang)
        if fmt == "months":
            return text(lang, "never") if x is None else text(lang, "roi.months", value=f"{x:.1f}")
        return usd(x, lang)

    if e.value is None and fmt != "months":
        return text(lang, "unknown")
    if e.low is None and e.high is None and e.value is None:
        return one(None)
    return f"{one(e.value)} [{one(e.low)}, {one(e.high)}]"


def gate_figure(gate: GateResult, x: float | None, lang: str) -> str:
    if x is None:
        return text(lang, "na")
    shown = GATES[gate.gate].shown
    if shown == "percent":
        return pct(x, lang)
    if shown == "seconds":
        return seconds(x, lang)
    return f"{x:.0f}"


def gate_measured(gate: GateResult, lang: str) -> str:
    if gate.value is None:
        return text(lang, "na")
    shown = gate_figure(gate, gate.value, lang)
    if gate.low is not None or gate.high is not None:

        def end(x: float | None) -> str:
            return text(lang, "unbounded") if x is None else gate_figure(gate, x, lang)

        shown += f" [{end(gate.low)}, {end(gate.high)}]"
    return shown


def gate_n(gate: GateResult, lang: str) -> str:
    """What a gate's n counts; a condition (a flag gate) counts nothing, so its n reads n/a, not 0."""
    if GATES[gate.gate].reason == "flag":
        return text(lang, "na")
    return text(lang, "gates.calls", n=gate.n) if gate.unit == "calls" else str(gate.n)


def _grouping_reason(gate: GateResult, lang: str, grouping: Grouping | None) -> str:
    kept = grouping.tasks_placed(KEEP_SINGLE) if grouping else []
    undecided = grouping.tasks_placed(UNDECIDED) if grouping else []
    key = f"reason.{gate.gate}.{gate.status.value}"
    if gate.status is Status.MORE_DATA and gate.items_needed is None:
        key += "_unknown"
    return text(
        lang,
        key,
        count=f"{gate.value or 0:.0f}",
        single=join(lang, kept or (grouping.single_tasks if grouping else [])),
        undecided=join(lang, undecided),
        needed=gate.items_needed,
    )


def gate_reason(gate: GateResult, lang: str, grouping: Grouping | None = None) -> str:
    """Why a gate passed, failed or could not be judged, in one clause."""
    reason = GATES[gate.gate].reason
    if reason == "flag":
        return text(lang, f"reason.{gate.gate}.{gate.status.value}")
    if reason == "grouping":
        return _grouping_reason(gate, lang, grouping)
    if reason == "count":
        return text(lang, f"reason.{gate.gate}.{gate.status.value}", n=gate.n, limit=f"{gate.limit or 0:.0f}")
    if gate.status is Status.UNKNOWN:
        if gate.gate == "cost_saving" and gate.why:  # the true reason: no cost, no pairs, a price of 0
            return text(lang, f"reason.cost_saving.{gate.why}")
        own = f"reason.{gate.gate}.unknown"  # a gate may say why it cannot be judged (cost: no price)
        return text(lang, own if own in MESSAGES[lang] else "reason.unknown")
    params = {
        "value": gate_figure(gate, gate.value, lang),
        "low": gate_figure(gate, gate.low, lang),
        "high": gate_figure(gate, gate.high, lang),
        "worst": gate_figure(gate, gate.worst, lang),
        "limit": gate_figure(gate, gate.limit, lang),
        "n": gate.n,
        "needed": gate.items_needed,
        "unit": text(lang, f"unit.{gate.unit}"),
    }
    direction = "upper" if gate.upper_limit else "lower"
    if gate.status is Status.MORE_DATA:
        return _more_data_reason(gate, lang, direction, params)
    return text(lang, f"reason.{gate.status.value}.{direction}", **params)


def _more_data_reason(gate: GateResult, lang: str, direction: str, params: dict[str, object]) -> str:
    if gate.value is None:
        return text(lang, "reason.more_data.none", needed=gate.items_needed)
    within = gate.limit is not None and (gate.value <= gate.limit if gate.upper_limit else gate.value >= gate.limit)
    if gate.items_needed is None:
        return text(lang, "reason.more_data.far" if within else "reason.more_data.beyond", **params)
    if gate.worst is None:
        return text(lang, "reason.more_data.unbounded", **params)
    return text(lang, f"reason.more_data.{direction}", **params)


def gate_label(gate: GateResult, lang: str) -> str:
    label = text(lang, f"gate.{gate.gate}")
    scope = gate.task or (text(lang, f"mode.{gate.mode}") if gate.mode else None)
    return f"{label} · {scope}" if scope else label


def stage_name(stage: int, lang: str) -> str:
    return text(lang, f"stage.{stage}")


def headline(decision: Decision, lang: str) -> str:
    """The decision in one or two sentences: the stage, the grouping, and what stops the next stage."""
    return " ".join(model_headline(decision.chosen, lang))


def lever_headline(d: ModelDecision, lang: str) -> str:
    """The cheapest option that passes the accuracy gates, in one sentence ("" before levers are compared)."""
    found = d.levers
    if found is None or d.outcome == "not_compared":
        return ""
    if found.cheapest is None:  # nothing to rank: say why when it is the volumes (the cost sentences say the rest)
        reference = found.lever("single").plan
        return projection_sentence(reference, lang) if reference is not None else ""
    best = found.lever(found.cheapest)
    saving = best.plan.net_monthly_benefit_usd.value if best.plan is not None else None
    params = {"model": d.model, "option": text(lang, f"levers.option.{best.option}"), "saving": usd(saving, lang)}
    mixed = found.lever("mixed")
    if best.option == "single":
        return text(lang, "levers.best.keep", **params)
    if best.option in MIXED_OPTIONS:
        return text(lang, "levers.best.mixed", **params)
    if mixed.passes_accuracy and mixed.plan is not None:
        return text(lang, "levers.best.instead", mixed=usd(mixed.plan.net_monthly_benefit_usd.value, lang), **params)
    return text(lang, "levers.best.other", **params)


def model_headline(d: ModelDecision, lang: str) -> list[str]:
    """The decision's sentences; the cheapest option comes first when it is not the mixing the stage
    advances, so no reader takes mixing for the best saving when a cheaper lever passes too."""
    lever = lever_headline(d, lang)
    cheaper_elsewhere = d.levers is not None and d.levers.cheapest not in (*MIXED_OPTIONS, None)
    sentences = _stage_headline(d, lang)
    if d.stage >= 1 and cheaper_elsewhere:
        return [lever, *sentences]
    return [*sentences, lever] if lever else sentences


def _stage_headline(d: ModelDecision, lang: str) -> list[str]:
    g = d.grouping
    parts: list[str] = []
    if d.outcome == "not_compared":
        return [text(lang, "headline.not_compared", model=d.model)]
    if d.stage == 3:
        parts.append(text(lang, "headline.ready", model=d.model, mixed=join(lang, g.mixed_tasks)))
    elif d.stage >= 1:
        parts.append(
            text(
                lang,
                "headline.advance",
                model=d.model,
                stage=d.stage,
                stage_name=stage_name(d.stage, lang),
                mixed=join(lang, g.mixed_tasks),
            )
        )
        parts += _outside_the_group(g, lang)
    elif d.outcome == "more_data":
        n = min((x.n for x in d.gates if x.gate == "items"), default=0)
        key = "headline.more_data" if d.items_needed is not None else "headline.more_data_unknown"
        parts.append(text(lang, key, model=d.model, needed=d.items_needed, n=n))
    else:
        parts.append(text(lang, f"headline.{d.outcome}", model=d.model))
    if d.stage < 3:
        parts.append(next_stage_sentence(d, lang))
    parts += cost_unknown_sentences(d, lang)
    return [p for p in parts if p]


def cost_unknown_sentences(d: ModelDecision, lang: str) -> list[str]:
    """Why the cost gate cannot be judged, when it cannot, in the true reason's words."""
    unknown = [x for x in d.gates if x.gate == "cost_saving" and x.status is Status.UNKNOWN]
    if not unknown:
        return []
    g = d.grouping
    plan = g.economics if g.mixed_tasks else g.all_mixed_economics
    why = unknown[0].why
    key = f"cost_unknown.{why}" if why else "cost_unknown"
    return [text(lang, key, model=d.model, tasks=join(lang, plan.tasks_without_pairs))]


def projection_sentence(plan: PlanEconomics, lang: str) -> str:
    """Why monthly figures cannot be projected ("" when they can)."""
    if plan.volume_issue is None:
        return ""
    return text(lang, f"projection.{plan.volume_issue}", model=plan.model, tasks=join(lang, plan.tasks_without_volume))


def _outside_the_group(g: Grouping, lang: str) -> list[str]:
    out = []
    if kept := g.tasks_placed(KEEP_SINGLE):
        out.append(text(lang, "headline.keep_single", single=join(lang, kept)))
    if undecided := g.tasks_placed(UNDECIDED):
        needs = [p.items_needed for p in g.placements if p.placement == UNDECIDED]
        needed = None if None in needs else max(n or 0 for n in needs)
        key = "headline.undecided" if needed else "headline.undecided_unknown"
        out.append(text(lang, key, tasks=join(lang, undecided), needed=needed))
    return out


def next_stage_sentence(d: ModelDecision, lang: str) -> str:
    """Why the next stage is not reached, gate by gate (the report's briefing tells it in plain words)."""
    nxt = d.stage + 1
    name = stage_name(nxt, lang)
    if d.outcome == "hold":
        failing = [x for x in d.blocking if x.status is Status.FAIL][:3]
        reasons = "; ".join(f"{gate_label(x, lang)}: {gate_reason(x, lang, d.grouping)}" for x in failing)
        return text(lang, "next.hold", next=nxt, next_name=name, reasons=reasons)
    if d.outcome == "more_data" and d.stage >= 1:
        key = "next.more_data" if d.items_needed is not None else "next.more_data_unknown"
        return text(lang, key, next=nxt, next_name=name, needed=d.items_needed)
    if d.outcome == "unknown":
        return text(lang, "next.unknown", next=nxt, next_name=name)
    return ""


def decision_line(decision: Decision, lang: str = "en") -> str:
    """One line for a terminal: stage and headline."""
    return f"Stage {decision.stage} ({STAGES[decision.stage]}): {headline(decision, lang)}"
