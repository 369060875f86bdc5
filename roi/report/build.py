"""Assemble the report of one evaluated run and write report.html and report.json."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from roi.briefing import Briefing
from roi.decision import Decision
from roi.errors import Problem, RoiError
from roi.evaluation import RunEvaluation
from roi.files import write_atomic
from roi.report import sections as sections_module
from roi.report.brief import brief_page, headline_sentences
from roi.report.i18n import LANGUAGES, text
from roi.report.render import render_page
from roi.report.sections import ReportInputs
from roi.report.wording import model_headline, stage_name

SCHEMA = 1


def _version() -> str:
    try:
        return metadata.version("roi")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    json: Path
    decision: Decision
    language: str
    briefing: Briefing | None  # what `roi run` printed at the run's end; `roi report` prints it again


def build_report(inputs: ReportInputs) -> dict[str, Any]:
    """The report as plain data: header, decision and every section's data (charts included)."""
    lang, pilot, run, d = inputs.lang, inputs.pilot, inputs.run, inputs.decision
    chosen = d.chosen
    built = []
    for section in sections_module.SECTIONS:
        data = section.build(inputs)
        if data is not None:
            built.append({"id": section.id, "template": section.template, "title": section.title(lang), "data": data})
    return {
        "schema": SCHEMA,
        "lang": lang,
        "t": {k: text(lang, k) for k in _page_keys()},
        "title": text(lang, "title", pilot=pilot.pilot),
        "subtitle": text(
            lang,
            "subtitle",
            business_unit=pilot.business_unit,
            owner=pilot.owner,
            run_id=inputs.run_id,
            when=run["finished_at"] or run["started_at"],
        ),
        "description": pilot.description,
        "brief": brief_page(inputs.evaluation.briefing, run["item_limit"], lang),
        "decision": {
            "model": d.model,
            "stage": d.stage,
            "stage_name": stage_name(d.stage, lang),
            "stage_what": text(lang, f"stage.{d.stage}.what"),
            "outcome": d.outcome,
            "outcome_text": text(lang, f"outcome.{d.outcome}"),
            "sentences": model_headline(chosen, lang),
            "headline": headline_sentences(chosen, lang),  # what the page shows beside the briefing
            "items_needed": chosen.items_needed,
            "mixed_tasks": chosen.grouping.mixed_tasks,
            "single_tasks": chosen.grouping.single_tasks,
            "stages": [
                {"stage": s, "name": stage_name(s, lang), "what": text(lang, f"stage.{s}.what")} for s in range(4)
            ],
            "per_model": [
                {"model": m.model, "stage": m.stage, "outcome": m.outcome, "sentences": model_headline(m, lang)}
                for m in d.models
            ],
        },
        "sections": built,
        "footer": text(lang, "footer", version=_version()),
        "run": {
            k: run[k] for k in ("run_id", "pilot", "pilot_sha256", "started_at", "finished_at", "status", "item_limit")
        },
    }


def _page_keys() -> list[str]:
    return ["nav", "decision.stage", "decision.model", "decision.outcome"]


def _json_ready(value: Any) -> Any:
    """Drop drawing instructions (`charts`) and keep figures; NaN and infinities become null."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items() if k != "charts"}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_language(language: str | None) -> None:
    """A user error unless `language` is None (the pilot's) or one the report is written in."""
    if language is not None and language not in LANGUAGES:
        raise RoiError(
            [Problem(f"unknown language {language!r}; use one of {', '.join(LANGUAGES)}", None, None, "--language")]
        )


def report_names(language: str, default: str) -> tuple[str, str]:
    """`report.html`/`report.json` in the pilot's own language; `report.ja.html`/`report.ja.json` for
    another, so a second language never replaces the first."""
    stem = "report" if language == default else f"report.{language}"
    return f"{stem}.html", f"{stem}.json"


def write_report(evaluation: RunEvaluation, run_dir: Path, language: str | None = None) -> ReportFiles:
    """Write report.html and report.json of an evaluated run into `run_dir` (owner-only and atomically,
    roi/files.py), in `language` (default: the pilot's report.language; another language is written
    beside it as report.<language>.html and .json)."""
    check_language(language)
    default = evaluation.pilot.report.language
    inputs = ReportInputs(evaluation, language or default)
    data = build_report(inputs)
    html_name, json_name = report_names(inputs.lang, default)
    html_path, json_path = run_dir / html_name, run_dir / json_name
    write_atomic(html_path, render_page(data))
    page = {k: v for k, v in data.items() if k != "t"}  # `t`: the page's own labels, not figures
    page["sections"] = [{k: v for k, v in s.items() if k != "template"} for s in data["sections"]]
    figures = _json_ready(page) | {"decision_detail": _json_ready(asdict(inputs.decision))}
    write_atomic(json_path, json.dumps(figures, indent=2, ensure_ascii=False, default=str) + "\n")
    return ReportFiles(html_path, json_path, inputs.decision, inputs.lang, evaluation.briefing)
