"""Scorers (roi/scoring.py): each family on hand-made cases, and the table every other use is built from:
the pilot schema's `scorer` field, error paths and the docs' table of scorers."""

from __future__ import annotations

import re
import typing

import pytest

from roi.pilot import _UNION_TAGS, TaskSpec
from roi.scoring import (
    SCORERS,
    ChoiceScorer,
    ContainsScorer,
    ExactScorer,
    NumericScorer,
    RegexScorer,
    match_choice,
    normalize,
    parse_number,
    score,
)
from tests.conftest import REPO


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


def test_regex_golds_must_compile() -> None:
    assert RegexScorer(type="regex").gold_problem("mexico( city)?") is None
    assert "not a valid regex" in str(RegexScorer(type="regex").gold_problem("mexico( city"))
    assert ExactScorer(type="exact").gold_problem("mexico( city") is None


def test_every_scorer_is_in_the_table_under_its_own_type() -> None:
    for name, entry in SCORERS.items():
        assert typing.get_args(entry.options.model_fields["type"].annotation) == (name,)
    members = TaskSpec.model_fields["scorer"].annotation
    assert {typing.get_args(m.model_fields["type"].annotation)[0] for m in typing.get_args(members)} == set(SCORERS)
    assert set(SCORERS) <= _UNION_TAGS  # their tags never show in an error's path


@pytest.mark.parametrize("name", sorted(SCORERS))
def test_a_bad_option_of_every_scorer_is_located_without_its_tag(name: str) -> None:
    from pydantic import ValidationError

    from roi.pilot import _clean_loc, format_loc

    task = {"name": "t", "instruction": "i", "examples": "e.csv", "eval": "e.csv", "scorer": {"type": name, "nope": 1}}
    with pytest.raises(ValidationError) as caught:
        TaskSpec.model_validate(task)
    paths = {format_loc(_clean_loc(e["loc"])) for e in caught.value.errors()}
    assert "scorer.nope" in paths, paths


def test_the_docs_list_every_scorer_with_its_options() -> None:
    text = (REPO / "docs" / "pilot-format.md").read_text(encoding="utf-8").split("### Scorers")[1].split("\n## ")[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]*) \|", text, re.M)}
    assert set(rows) == set(SCORERS)
    for name, entry in SCORERS.items():
        options = set(entry.options.model_fields) - {"type"}
        assert options == set(re.findall(r"`(\w+)`", rows[name])), name
