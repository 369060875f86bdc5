"""The briefing at the top of the page, in the page's language: what was measured, why, what next.

Accuracy changes are told in points as *mixed compared with single* ("mixed is 38 points worse"): the
words carry the direction, which agrees with the page's charts and tables, where the accuracy drop
(single − mixed) is positive when mixed is worse.
"""

from __future__ import annotations

from typing import Any

from roi.briefing import Briefing, Point
from roi.decision import ModelDecision
from roi.report.i18n import join, text
from roi.report.wording import cost_unknown_sentences, model_headline, next_stage_sentence, pct, seconds, stage_name


def brief_page(briefing: Briefing | None, item_limit: int | None, lang: str) -> dict[str, Any] | None:
    if briefing is None:
        return None
    measured = text(
        lang,
        "brief.measured",
        tasks_n=len(briefing.tasks),
        tasks=join(lang, briefing.tasks),
        models=join(lang, briefing.models),
        n=briefing.items_per_task,
        answers=f"{briefing.answers:,}",
        **plural(briefing.items_per_task),
    )
    if item_limit:
        measured += ("" if lang == "ja" else " ") + text(lang, "brief.trial", limit=item_limit, **plural(item_limit))
    steps = [_sentence("next", p, lang) for p in briefing.next_steps] or [text(lang, "brief.next.nothing")]
    return {
        "title": text(lang, "brief.title"),
        "measured": measured,
        "why_title": text(lang, "brief.why"),
        "why": [_sentence("reason", p, lang) for p in briefing.reasons],
        "next_title": text(lang, "brief.next"),
        "next": steps,
    }


def headline_sentences(d: ModelDecision, lang: str) -> list[str]:
    """The decision's headline without what the briefing says in plainer words: the gate-by-gate
    reason the next stage is not reached, and the cost-unknown note. The stage, the tasks that stay
    single or undecided and the cheapest option stay (the cheapest first when it is not the mixing the
    stage advances)."""
    told = set(cost_unknown_sentences(d, lang)) | ({next_stage_sentence(d, lang)} if d.stage < 3 else set())
    return [s for s in model_headline(d, lang) if s not in told] or model_headline(d, lang)[:1]


def plural(n: int) -> dict[str, str]:
    """English words that agree with a count (the Japanese texts need none)."""
    return {"items": "item" if n == 1 else "items", "were": "was" if n == 1 else "were"}


def _sentence(kind: str, point: Point, lang: str) -> str:
    return text(lang, f"brief.{kind}.{point.key}", **_words(point.values, lang))


def _words(values: dict[str, Any], lang: str) -> dict[str, Any]:
    """A point's figures as the words its sentence shows."""
    shown: dict[str, Any] = dict(values) | (plural(values["n"]) if isinstance(values.get("n"), int) else {})
    for key in ("rate", "saving", "share"):
        if key in values:
            shown[key] = pct(values[key], lang)
    if "limit" in values:
        shown["limit"] = _limit(values, lang)
    if "saving" in values and values["saving"] is not None:
        shown["more"] = pct(-values["saving"], lang)
    if "change" in values:
        shown["change"] = change_words(values["change"], lang)
        shown["range"] = range_words(values.get("low"), values.get("high"), lang)
    if "p95_s" in values:
        shown["p95"] = seconds(values["p95_s"], lang)
    if "stage" in values:
        shown["name"] = stage_name(values["stage"], lang)
        shown["what"] = text(lang, f"stage.{values['stage']}.what")
    if "review_share" in values:
        shown["share"] = pct(values["review_share"], lang)
    for key in ("tasks", "others"):
        if key in values:
            shown[key] = join(lang, values[key])
    shown["others"] = text(lang, "brief.also", tasks=shown["others"]) if values.get("others") else ""
    return shown


def _limit(values: dict[str, Any], lang: str) -> str:
    """The pilot's limit in the unit of the figure beside it."""
    limit = values["limit"]
    if limit is None:
        return text(lang, "unknown")
    if "p95_s" in values:
        return seconds(limit, lang)
    if "rate" in values or "saving" in values:
        return pct(limit, lang)
    return f"{limit:g}"  # points of accuracy, or a count of items


def change_words(points: float, lang: str) -> str:
    """`38 points worse than single` for −38; `as accurate as single` for a change that rounds to 0."""
    rounded = round(points)
    if rounded == 0:
        return text(lang, "brief.change.same")
    return text(lang, "brief.change.worse" if rounded < 0 else "brief.change.better", p=abs(rounded))


def range_words(low: float | None, high: float | None, lang: str) -> str:
    """A 95% interval of mixed − single in points, told as worse and better."""
    if low is None or high is None:
        return text(lang, "unknown")
    a, b = round(low), round(high)
    if b <= 0:
        return text(lang, "brief.range.worse", a=abs(b), b=abs(a))
    if a >= 0:
        return text(lang, "brief.range.better", a=a, b=b)
    return text(lang, "brief.range.both", a=abs(a), b=b)
