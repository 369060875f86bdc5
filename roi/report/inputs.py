"""What a report section is: a builder from the run's inputs to plain data, and its include template."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from roi.decision import Decision, ModelDecision
from roi.evaluation import RunEvaluation
from roi.metrics import RunSummary
from roi.pilot import Pilot
from roi.report.i18n import text


@dataclass(frozen=True)
class ReportInputs:
    """What a section builder reads: the run's evaluation (roi/evaluation.py) and the page's language."""

    evaluation: RunEvaluation
    lang: str

    @property
    def run_id(self) -> str:
        return self.evaluation.run_id

    @property
    def run(self) -> dict[str, Any]:
        return self.evaluation.run  # the run's row in the store

    @property
    def pilot(self) -> Pilot:
        return self.evaluation.pilot

    @property
    def items(self) -> pd.DataFrame:
        return self.evaluation.items

    @property
    def calls(self) -> pd.DataFrame:
        return self.evaluation.calls

    @property
    def summary(self) -> RunSummary:
        return self.evaluation.summary

    @property
    def decision(self) -> Decision:
        return self.evaluation.decision

    @property
    def environment(self) -> dict[str, Any]:
        return self.evaluation.environment


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
