"""Scorers: does a parsed answer count as the expected output? One small function per family."""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass

from roi.pilot import ChoiceScorer, ContainsScorer, ExactScorer, NumericScorer, RegexScorer, ScorerSpec

_PUNCT = str.maketrans("", "", string.punctuation + "。、「」！？・")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


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


def score_exact(answer: str, gold: str, spec: ExactScorer) -> Score:
    opts = {
        "case_sensitive": spec.case_sensitive,
        "strip_punctuation": spec.strip_punctuation,
        "collapse_whitespace": spec.collapse_whitespace,
    }
    got = normalize(answer, **opts)
    return Score(got == normalize(gold, **opts), got)


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


def parse_number(text: str) -> float | None:
    found = _NUMBER.search(unicodedata.normalize("NFKC", text))
    return float(found.group().replace(",", "")) if found else None


def score_numeric(answer: str, gold: str, spec: NumericScorer) -> Score:
    got, expected = parse_number(answer), parse_number(gold)
    if got is None or expected is None:
        return Score(False, "")
    allowed = max(spec.tolerance, spec.relative_tolerance * abs(expected))
    return Score(abs(got - expected) <= allowed, f"{got:g}")


def score_regex(answer: str, gold: str, spec: RegexScorer) -> Score:
    flags = re.IGNORECASE if spec.ignore_case else 0
    text = answer.strip()
    return Score(re.fullmatch(gold, text, flags) is not None, text)


def score_contains(answer: str, gold: str, spec: ContainsScorer) -> Score:
    got = normalize(answer, case_sensitive=spec.case_sensitive)
    return Score(normalize(gold, case_sensitive=spec.case_sensitive) in got, got)


def score(answer: str, gold: str, spec: ScorerSpec) -> Score:
    match spec:
        case ExactScorer():
            return score_exact(answer, gold, spec)
        case ChoiceScorer():
            return score_choice(answer, gold, spec)
        case NumericScorer():
            return score_numeric(answer, gold, spec)
        case RegexScorer():
            return score_regex(answer, gold, spec)
        case ContainsScorer():
            return score_contains(answer, gold, spec)
    raise AssertionError(f"unknown scorer {spec!r}")
