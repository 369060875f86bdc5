"""Scorers: does a parsed answer count as the expected output? One small function per family, each with
its options (a pydantic model, as a pilot file's `scorer:` mapping gives them), and one table,
`SCORERS`, from which the pilot schema's `scorer` field, the dispatch and the validator's messages are
built. Adding a scorer is an options class, a score function and an entry in `SCORERS`, with its test
(tests/test_scoring.py) and its line in docs/pilot-format.md (a test checks the table there).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

_PUNCT = str.maketrans("", "", string.punctuation + "。、「」！？・")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


NonNegative = Annotated[float, Field(ge=0.0)]


class ScorerOptions(BaseModel):
    """What every scorer family's options have: the family's name, and defaults for the questions the
    validator and the interference measures ask of a scorer."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str

    def gold_problem(self, gold: str) -> str | None:
        """Why an eval item's expected output cannot be scored by this scorer (None: it can)."""
        return None

    def answer_space(self, outputs: list[str]) -> list[str]:
        """The answers a task can give, from its data's outputs (an answer outside another task's
        space but inside this one counts as answering the wrong task)."""
        return outputs


@dataclass(frozen=True)
class Score:
    correct: bool
    normalized: str  # the answer as the scorer compared it (a matched choice, a number, ...)


def normalize(
    text: str,
    *,
    case_sensitive: bool = False,
    strip_punctuation: bool = False,
    collapse_whitespace: bool = True,
) -> str:
    """Args:
    case_sensitive: keep letter case (otherwise case-folded).
    strip_punctuation: drop ASCII and common Japanese punctuation.
    collapse_whitespace: turn runs of white space into one space.
    """
    text = unicodedata.normalize("NFKC", text).strip()
    if not case_sensitive:
        text = text.casefold()
    if strip_punctuation:
        text = text.translate(_PUNCT)
    if collapse_whitespace:
        text = " ".join(text.split())
    return text.strip()


class ExactScorer(ScorerOptions):
    type: Literal["exact"]
    case_sensitive: bool = False
    strip_punctuation: bool = False
    collapse_whitespace: bool = True


def score_exact(answer: str, gold: str, spec: ExactScorer) -> Score:
    opts = {
        "case_sensitive": spec.case_sensitive,
        "strip_punctuation": spec.strip_punctuation,
        "collapse_whitespace": spec.collapse_whitespace,
    }
    got = normalize(answer, **opts)
    return Score(got == normalize(gold, **opts), got)


class ChoiceScorer(ScorerOptions):
    type: Literal["choice"]
    choices: list[str] = Field(min_length=2)
    case_sensitive: bool = False

    @field_validator("choices")
    @classmethod
    def _distinct(cls, choices: list[str]) -> list[str]:
        lowered = [c.strip().lower() for c in choices]
        if any(not c for c in lowered):
            raise ValueError("choices must not be empty strings")
        if len(set(lowered)) != len(lowered):
            raise ValueError("choices must be distinct (ignoring case)")
        return choices

    def answer_space(self, outputs: list[str]) -> list[str]:
        return self.choices


def match_choice(answer: str, choices: list[str], case_sensitive: bool = False) -> str | None:
    """The choice an answer names: an exact match, else the only choice the answer starts with."""
    got = normalize(answer, case_sensitive=case_sensitive, strip_punctuation=True)
    keyed = {normalize(c, case_sensitive=case_sensitive, strip_punctuation=True): c for c in choices}
    if got in keyed:
        return keyed[got]
    starts = [c for k, c in keyed.items() if got.startswith(k + " ")]
    return starts[0] if len(starts) == 1 else None


def score_choice(answer: str, gold: str, spec: ChoiceScorer) -> Score:
    chosen = match_choice(answer, spec.choices, spec.case_sensitive)
    expected = match_choice(gold, spec.choices, spec.case_sensitive) or gold
    return Score(chosen is not None and chosen == expected, chosen or "")


class NumericScorer(ScorerOptions):
    type: Literal["numeric"]
    tolerance: NonNegative = 0.0
    relative_tolerance: NonNegative = 0.0


def parse_number(text: str) -> float | None:
    found = _NUMBER.search(unicodedata.normalize("NFKC", text))
    return float(found.group().replace(",", "")) if found else None


def score_numeric(answer: str, gold: str, spec: NumericScorer) -> Score:
    got, expected = parse_number(answer), parse_number(gold)
    if got is None or expected is None:
        return Score(False, "")
    allowed = max(spec.tolerance, spec.relative_tolerance * abs(expected))
    return Score(abs(got - expected) <= allowed, f"{got:g}")


class RegexScorer(ScorerOptions):
    """The item's expected output is a regular expression the whole answer must match."""

    type: Literal["regex"]
    ignore_case: bool = True

    def gold_problem(self, gold: str) -> str | None:
        try:
            re.compile(gold)
        except re.error as err:
            return f"expected output {gold!r} is not a valid regex ({err})"
        return None


def score_regex(answer: str, gold: str, spec: RegexScorer) -> Score:
    flags = re.IGNORECASE if spec.ignore_case else 0
    text = answer.strip()
    return Score(re.fullmatch(gold, text, flags) is not None, text)


class ContainsScorer(ScorerOptions):
    type: Literal["contains"]
    case_sensitive: bool = False


def score_contains(answer: str, gold: str, spec: ContainsScorer) -> Score:
    got = normalize(answer, case_sensitive=spec.case_sensitive)
    return Score(normalize(gold, case_sensitive=spec.case_sensitive) in got, got)


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Scorer:
    options: type[ScorerOptions]  # its `type` literal is the key it is listed under
    score: Callable[[str, str, Any], Score]  # (answer, expected output, options)


SCORERS: dict[str, Scorer] = {
    "exact": Scorer(ExactScorer, score_exact),
    "choice": Scorer(ChoiceScorer, score_choice),
    "numeric": Scorer(NumericScorer, score_numeric),
    "regex": Scorer(RegexScorer, score_regex),
    "contains": Scorer(ContainsScorer, score_contains),
}

if TYPE_CHECKING:
    ScorerSpec = ScorerOptions
else:  # the pilot schema's `scorer`: one of the table's options classes, chosen by `type`
    ScorerSpec = Annotated[Union[tuple(s.options for s in SCORERS.values())], Field(discriminator="type")]  # noqa: UP007


def score(answer: str, gold: str, spec: ScorerOptions) -> Score:
    return SCORERS[spec.type].score(answer, gold, spec)
