"""What a report section is: a builder from the run's inputs to plain data, and its include template."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from roi.decision import Decision, ModelDecision
from roi.metrics import RunSummary
from roi.pilot import Pilot
from roi.report.i18n import text


@dataclass(frozen=True)
class ReportInputs:
    db: sqlite3.Connection
    run_id: str
    run: dict[str, Any]  # the run's row in the store
    pilot: Pilot
    items: pd.DataFrame
    calls: pd.DataFrame
    summary: RunSummary
    decision: Decision
    environment: dict[str, Any]
    lang: str


Builder = Callable[[ReportInputs], dict[str, Any] | None]


@dataclass(frozen=True)
class Section:
    id: str  # the anchor; the heading is the message `section.<id>` unless `titles` gives it
    template: str
    build: Builder
    titles: Mapping[str, str] | None = None  # heading per language, e.g. {"en": "...", "ja": "..."}

    def title(self, lang: str) -> str:
        return self.titles[lang] if self.titles else text(lang, f"section.{self.id}")


def decided_models(inputs: ReportInputs) -> list[ModelDecision]:
    return inputs.decision.models
