"""The manager's page: the briefing at the top (what was measured, why, what next) on hand-made runs,
money in currency format with small amounts per 1,000 items, the ROI block saying what it compares,
one sign convention for accuracy, and a second language written beside the first."""

from __future__ import annotations

import re
from pathlib import Path

from roi.briefing import Briefing
from roi.console import latency_notes
from roi.decision import Status
from roi.report import write_report
from roi.report.brief import brief_page, change_words, range_words
from roi.runner import RunOptions, rebuild_report, run_pilot

from .fakes import gold
from .test_decision import TimedFake, gamma_takes_alphas_answer, make_pilot, run_fake, wrong_in_mixed


def test_every_mixed_call_failing_says_so_not_collect_more(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, items=10)
    failing = {f"fake/mixed:g0:{i}" for i in range(10)}
    backend = TimedFake(pilot.spec.models[0], pilot, gold, fail_keys=failing)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", backends={"fake": backend}))
    assert result.decision is not None and result.decision.outcome == "not_compared"
    compared = [g for g in result.decision.chosen.gates if g.gate == "modes_compared"]
    assert [g.status for g in compared] == [Status.FAIL]
    b = briefing(result)
    assert [p.key for p in b.reasons] == ["not_compared"] and [p.key for p in b.next_steps] == ["run_both_modes"]
    page = brief_page(b, None, "en")
    assert page is not None and "every one of its calls failed" in page["why"][0]
    notes = " ".join(latency_notes(result.summary))
    assert "every call of that row failed" in notes and "response cache" not in notes


def briefing(result: object) -> Briefing:
    found = result.evaluation.briefing  # type: ignore[attr-defined]
    assert found is not None
    return found


def test_a_clear_go_says_what_held_and_starts_the_stage(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path, items=150), tmp_path)
    b = briefing(result)
    assert (b.stage, b.items_per_task, b.answers, b.tasks) == (3, 150, 600, ["alpha", "beta"])
    assert [p.key for p in b.reasons] == ["accuracy_holds", "saves"]
    assert [p.key for p in b.next_steps] == ["start_stage"]
    page = brief_page(b, None, "en")
    assert page is not None
    assert page["measured"].startswith("What was measured: 2 tasks (alpha, beta) with fake; 150 items per task")
    assert page["why"][1] == "Mixed calls save 50% of the compute cost."
    assert page["next"][0].startswith("Start stage 3 (Expand): more units, or more tasks per call.")


def test_a_hold_says_how_much_worse_mixed_is(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path), tmp_path, wrong_in_mixed)
    b = briefing(result)
    assert b.reasons[0].key == "accuracy_worse" and b.reasons[0].values["change"] == -100
    page = brief_page(b, None, "en")
    assert page is not None
    why = page["why"][0]
    assert "on alpha, mixed is 100 points worse than single (95% interval:" in why
    assert "The pilot allows 5 points. Also short of the limit: beta." in why
    assert page["next"][0].startswith("Keep alpha, beta on single prompts with fake")
    ja = brief_page(b, None, "ja")
    assert ja is not None and "混合が単一より 100 ポイント低い" in ja["why"][0]


def test_too_few_items_asks_for_how_many_more(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path), tmp_path, limit=5)
    b = briefing(result)
    collect = next(p for p in b.next_steps if p.key == "collect")
    assert collect.values == {"more": 91, "needed": 96, "n": 5}  # the accuracy gate settles at 96 items
    page = brief_page(b, 5, "en")
    assert page is not None
    assert "Collect about 91 more labelled items per task (about 96 per task in all)" in page["next"][0]
    assert page["measured"].endswith("This was a trial on the first 5 items of each task.")
    assert page["why"][0] == "Only 5 items per task were compared; the pilot asks for 30 before deciding."
    assert len(page["why"]) == 1  # what is merely unsettled with 5 items is said by that already


def test_accuracy_reads_one_way_everywhere() -> None:
    assert change_words(-38.4, "en") == "38 points worse than single"
    assert change_words(4.0, "en") == "4 points better than single"
    assert change_words(0.2, "en") == "as accurate as single"
    assert range_words(-56, -24, "en") == "95% interval: 24 to 56 points worse"
    assert range_words(-10, 3, "en") == "95% interval: from 10 points worse to 3 points better"


def test_page_money_and_roi_labels(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path), tmp_path, wrong_in_mixed)
    html = (result.run_dir / "report.html").read_text()
    assert not re.search(r"\d(\.\d+)?e-\d", html)  # no money (or anything) in scientific notation
    assert "Cost per 1,000 items" in html and "$0.0005" not in html
    # nothing groups: the ROI block prices every task mixed and says it is a comparison
    assert "every task mixed (comparison)" in html and "Net monthly benefit if every task were mixed" in html
    assert "never: it costs more each month than it saves" in html and "none: it loses money every month" in html
    assert 'class="brief"' in html and "What to do next" in html


def test_a_grouped_plan_names_what_it_prices(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, ("alpha", "beta", "gamma"), items=160)
    result = run_fake(pilot, tmp_path, gamma_takes_alphas_answer)
    html = (result.run_dir / "report.html").read_text()
    assert "the plan: alpha, beta mixed" in html and "Keep gamma on single prompts" in html
    assert "33.3% less" in html  # the measured plan's saving of 1/3, told as less cost


def test_second_language_is_written_beside_the_first(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path), tmp_path)
    english = (result.run_dir / "report.html").read_text()
    files = rebuild_report(tmp_path / "out", result.run_id, "ja")
    assert files.html.name == "report.ja.html" and files.json.name == "report.ja.json"
    assert (result.run_dir / "report.html").read_text() == english  # the English page is untouched
    assert 'lang="ja"' in files.html.read_text() and "概要" not in english
    again = write_report(result.evaluation, result.run_dir, "en")
    assert again.html.name == "report.html"


def test_too_few_items_without_a_projection_asks_for_the_minimum(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path), tmp_path, wrong_in_mixed, limit=4)
    b = briefing(result)
    # every mixed answer wrong with 4 items: no count can be projected, so the pilot's minimum is the floor
    assert result.decision.chosen.items_needed is None
    assert [(p.key, p.values) for p in b.next_steps] == [("collect_minimum", {"more": 26, "needed": 30, "n": 4})]
    page = brief_page(b, 4, "en")
    assert page is not None and page["next"][0].startswith("Collect at least 26 more labelled items per task")
