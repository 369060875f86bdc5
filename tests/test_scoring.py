from __future__ import annotations

import pytest

from roi.pilot import ChoiceScorer, ContainsScorer, ExactScorer, NumericScorer, RegexScorer
from roi.scoring import match_choice, normalize, parse_number, score


def test_normalize_options() -> None:
    assert normalize("  Hello   World ") == "hello world"
    assert normalize("Hello", case_sensitive=True) == "Hello"
    assert normalize("Paris.", strip_punctuation=True) == "paris"
    assert normalize("ＡＢＣ") == "abc"  # full-width letters fold (NFKC)
    assert normalize("東京。", strip_punctuation=True) == "東京"


@pytest.mark.parametrize(
    ("answer", "gold", "spec", "correct"),
    [
        ("paris", "Paris", ExactScorer(type="exact"), True),
        ("paris", "Paris", ExactScorer(type="exact", case_sensitive=True), False),
        ("Paris.", "Paris", ExactScorer(type="exact"), False),
        ("Paris.", "Paris", ExactScorer(type="exact", strip_punctuation=True), True),
        ("Billing", "billing", ChoiceScorer(type="choice", choices=["billing", "shipping"]), True),
        ("billing department", "billing", ChoiceScorer(type="choice", choices=["billing", "shipping"]), True),
        ("bill", "billing", ChoiceScorer(type="choice", choices=["billing", "shipping"]), False),
        ("about 41.8", "42", NumericScorer(type="numeric", tolerance=0.5), True),
        ("41", "42", NumericScorer(type="numeric", tolerance=0.5), False),
        ("105", "100", NumericScorer(type="numeric", relative_tolerance=0.05), True),
        ("1,000", "1000", NumericScorer(type="numeric"), True),
        ("no number", "3", NumericScorer(type="numeric", tolerance=10), False),
        ("Mexico City", "mexico( city)?", RegexScorer(type="regex"), True),
        ("Mexico City", "mexico( city)?", RegexScorer(type="regex", ignore_case=False), False),
        ("Mexico City, Mexico", "mexico( city)?", RegexScorer(type="regex"), False),  # whole answer must match
        ("It is Tokyo, I think", "tokyo", ContainsScorer(type="contains"), True),
        ("Kyoto", "tokyo", ContainsScorer(type="contains"), False),
    ],
)
def test_scorers(answer: str, gold: str, spec: object, correct: bool) -> None:
    assert score(answer, gold, spec).correct is correct  # type: ignore[arg-type]


def test_choice_is_not_fooled_by_ambiguous_prefix() -> None:
    choices = ["high", "high priority"]
    assert match_choice("high priority", choices) == "high priority"
    assert match_choice("medium", choices) is None


def test_parse_number() -> None:
    assert parse_number("it is -3.5 degrees") == -3.5
    assert parse_number("1e3") == 1000.0
    assert parse_number("none") is None
