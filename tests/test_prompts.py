"""Prompt assembly for both modes and parsing of answers back to their queries."""

from __future__ import annotations

import dataclasses

from roi.datasets import Example
from roi.pilot import load_pilot
from roi.prompts import PromptCall, Query, build_calls, parse_mixed, parse_single, task_groups

from .conftest import PILOTS


def demo_calls(limit: int = 3) -> list:  # type: ignore[type-arg]
    return build_calls(load_pilot(PILOTS / "superposition-demo.yaml"), limit)


def test_single_prompt_layout() -> None:
    call = next(c for c in demo_calls() if c.mode == "single")
    assert call.prompt.startswith("Give the capital city of the country.\n\nInput: France\nOutput: Paris\n\n")
    assert call.prompt.count("Input:") == 8 + 1  # 8 shots and the query
    assert call.suffix == "Input: Greece\nOutput:"
    assert call.stop == ("\n",)


def test_both_modes_score_the_same_items() -> None:
    calls = demo_calls(limit=5)
    single = {(q.task, q.item.id) for c in calls if c.mode == "single" for q in c.queries}
    mixed = {(q.task, q.item.id) for c in calls if c.mode == "mixed" for q in c.queries}
    assert single == mixed
    assert len(single) == 4 * 5


def test_mixed_calls_share_a_prefix_and_hold_one_query_per_task() -> None:
    mixed = [c for c in demo_calls() if c.mode == "mixed"]
    assert len(mixed) == 3
    assert len({c.prefix for c in mixed}) == 1
    for call in mixed:
        assert sorted(q.task for q in call.queries) == ["capital", "en_fr", "number_en", "upper"]
        first = call.queries[0]
        assert call.suffix.endswith(f"A[1] ({first.task}) {first.item.input} ->")
    # 4 demonstration blocks (shots_per_task) of 4 labelled examples each
    assert mixed[0].prefix.count("Q[1]") == 4
    assert "- capital: Give the capital city of the country." in mixed[0].prefix


def test_mixed_assembly_is_deterministic_for_a_seed() -> None:
    pilot = load_pilot(PILOTS / "superposition-demo.yaml")
    again = build_calls(pilot, 3)
    assert [c.prompt for c in again] == [c.prompt for c in demo_calls()]
    reseeded = type(pilot)(pilot.spec.model_copy(update={"seed": 99}), pilot.path, pilot.sha256, pilot.tasks)
    assert [c.prompt for c in build_calls(reseeded, 3) if c.mode == "mixed"] != [
        c.prompt for c in again if c.mode == "mixed"
    ]


def test_tasks_per_call_groups() -> None:
    pilot = load_pilot(PILOTS / "superposition-demo.yaml")
    mixed = pilot.spec.modes.mixed.model_copy(update={"tasks_per_call": 2})
    modes = pilot.spec.modes.model_copy(update={"mixed": mixed})
    two = type(pilot)(pilot.spec.model_copy(update={"modes": modes}), pilot.path, pilot.sha256, pilot.tasks)
    assert [[t.spec.name for t in g] for g in task_groups(two)] == [["capital", "upper"], ["number_en", "en_fr"]]
    mixed3 = mixed.model_copy(update={"tasks_per_call": 3})
    three = type(pilot)(
        pilot.spec.model_copy(update={"modes": modes.model_copy(update={"mixed": mixed3})}),
        pilot.path,
        pilot.sha256,
        pilot.tasks,
    )
    # A lone leftover task cannot be mixed: it joins the previous group.
    assert [len(g) for g in task_groups(three)] == [4]


def queries(*pairs: tuple[str, str]) -> tuple[Query, ...]:
    return tuple(Query(task, Example(str(i), x, "")) for i, (task, x) in enumerate(pairs))


def test_parse_mixed_answers() -> None:
    qs = queries(("capital", "Spain"), ("upper", "house"), ("number_en", "5"))
    text = " Madrid\nA[2] (upper) house -> HOUSE\nA[3] (number_en) 5 -> five\n"
    assert parse_mixed(text, qs) == ["Madrid", "HOUSE", "five"]


def test_parse_mixed_missing_garbled_and_duplicate_lines() -> None:
    qs = queries(("capital", "Spain"), ("upper", "a -> b"), ("number_en", "5"))
    # answer 2 echoes its input (which itself holds an arrow), 3 is missing, 1 repeated later
    text = " Madrid\nA[2] (upper) a -> b -> A -> B\nA[1] (capital) Spain -> Rome\nQ[1] something"
    assert parse_mixed(text, qs) == ["Madrid", "A -> B", None]
    # a garbled echo still yields the text after the first arrow
    assert parse_mixed(" \nA[1] (capitol) Spian -> Madrid", qs)[0] == "Madrid"


def test_a_restarted_list_is_not_cut_off() -> None:
    """A mixed call does not stop at a second A[1]: the model may leave the first line empty and
    restate it, and parse_mixed takes the restated answer."""
    from roi.backends.text import cut_at_stop

    call = next(c for c in demo_calls() if c.mode == "mixed")
    qs = queries(("upper", "house"), ("en_fr", "white"), ("capital", "France"))
    text = "\nA[1] (upper) house -> HOUSE\nA[2] (en_fr) white -> blanc\nA[3] (capital) France -> Paris"
    assert cut_at_stop(text, call.stop) == text
    assert parse_mixed(text, qs) == ["HOUSE", "blanc", "Paris"]
    assert len(call.queries) == 4 and cut_at_stop(text + "\nA[5] (upper) x -> X", call.stop) == text  # past the end


def first_complete(call: PromptCall, text: str) -> int | None:
    """Where a local backend stops: the shortest prefix of `text` the call calls complete."""
    return next((n for n in range(len(text) + 1) if call.complete(text[:n])), None)


def test_a_mixed_call_is_complete_once_every_query_has_an_answer() -> None:
    call = dataclasses.replace(
        next(c for c in demo_calls() if c.mode == "mixed"),
        queries=queries(("upper", "house"), ("en_fr", "white"), ("capital", "France")),
    )
    cases = {
        # an ordinary answer list, then the model starts it again (seen on Gemma 3 270M)
        " HOUSE\nA[2] (en_fr) white -> blanc\nA[3] (capital) France -> Paris\nA[1] (upper): house -> X\n": 3,
        # the first line left empty and restated
        "\nA[1] (upper) house -> HOUSE\nA[2] (en_fr) white -> blanc\nA[3] (capital) France -> Paris\nmore\n": 4,
        # the first line repeated before the list goes on
        " HOUSE\nA[1] (upper) house -> HOUSE\nA[2] (en_fr) white -> blanc\nA[3] (capital) France -> Paris\n": 4,
    }
    for text, lines in cases.items():
        stop = first_complete(call, text)
        assert stop is not None and text[:stop].count("\n") == lines, text
        assert parse_mixed(text[:stop], call.queries) == parse_mixed(text, call.queries) == ["HOUSE", "blanc", "Paris"]
    assert not call.complete(" HOUSE\nA[2] (en_fr) white -> blanc\nA[3] (capital) France -> Par")  # line unfinished
    assert not call.complete(" HOUSE\nA[2] (en_fr) white ->\nA[3] (capital) France -> Paris\n")  # one empty
    assert not next(c for c in demo_calls() if c.mode == "single").complete(" Paris\nInput: x\n")


def test_parse_single() -> None:
    assert parse_single(" Paris\nInput: x") == "Paris"
    assert parse_single("   \n") is None
