"""The measured plan: a grouping that drops a task runs as calls of its own (mode `plan`) on the same
items; the store keeps them, the ROI section prices the plan from them, a killed run resumes them,
--max-cost covers them and `roi plan` counts them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from roi.planning import plan_pilot
from roi.prompts import PromptCall, Query, build_calls, plan_calls, run_groups
from roi.report.i18n import text
from roi.runner import RunOptions, run_pilot

from .fakes import FakeBackend
from .test_decision import TimedFake, gamma_takes_alphas_answer, make_pilot, run_fake

TASKS = ("alpha", "beta", "gamma")


def test_plan_calls_only_for_a_grouping_the_pilot_did_not_run(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, TASKS, items=5)
    assert run_groups(pilot) == [list(TASKS)]
    assert plan_calls(pilot, list(TASKS)) == [] and plan_calls(pilot, ["alpha"]) == []
    calls = plan_calls(pilot, ["alpha", "gamma"])
    assert [c.call_key for c in calls] == [f"plan:alpha+gamma:{i}" for i in range(5)]
    assert all(c.mode == "plan" and {q.task for q in c.queries} == {"alpha", "gamma"} for c in calls)
    # the same items as the pilot's own mixed calls, in the same order
    mixed = [c for c in build_calls(pilot) if c.mode == "mixed"]
    for plan, run in zip(calls, mixed, strict=True):
        assert {q.item.id for q in plan.queries} == {q.item.id for q in run.queries if q.task != "beta"}


def test_a_dropped_task_gives_plan_calls_the_roi_section_uses(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, TASKS, items=160)
    result = run_fake(pilot, tmp_path, gamma_takes_alphas_answer)
    db = sqlite3.connect(result.db_path)
    modes = dict(db.execute("SELECT mode, count(*) FROM calls GROUP BY mode").fetchall())
    assert modes == {"single": 480, "mixed": 160, "plan": 160}
    assert db.execute("SELECT count(*) FROM items WHERE mode = 'plan'").fetchone() == (320,)
    g = result.decision.chosen.grouping
    assert g.mixed_tasks == ["alpha", "beta"] and g.measured_plan
    # the fake's calls take 1 s each at $3.60/h: plan items cost $0.001 / 2, gamma stays single at $0.001
    plan = g.economics
    assert plan.cost_per_item_plan_usd.value == pytest.approx((0.0005 + 0.0005 + 0.001) / 3)
    report = json.loads((result.run_dir / "report.json").read_text())
    roi = next(s for s in report["sections"] if s["id"] == "roi")["data"]["models"][0]
    assert "The plan is measured" in roi["measured"] and "160 calls" in roi["measured"]
    assert roi["economics"]["cost_saving"]["value"] == pytest.approx(1 / 3)
    # the cost gate counts the group's 160 plan calls, not those plus the 160 mixed calls gamma's items sat in
    assert plan.clusters == 320 and plan.calls == 160
    assert next(x for x in result.decision.chosen.gates if x.gate == "cost_saving").n == 160
    cells = {(c.task, c.mode) for c in result.summary.cells}
    assert ("alpha", "plan") in cells and ("gamma", "plan") not in cells  # shown like the other modes
    assert {m.mode for m in result.summary.modes} == {"single", "mixed", "plan"}


def test_a_killed_run_resumes_only_the_plan_calls_not_made(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, TASKS, items=160)
    options = RunOptions(out_dir=tmp_path / "out")
    first = TimedFake(pilot.spec.models[0], pilot, gamma_takes_alphas_answer, interrupt_after=480 + 160 + 10)
    with pytest.raises(KeyboardInterrupt):
        run_pilot(pilot, RunOptions(out_dir=options.out_dir, backends={"fake": first}))
    again = TimedFake(pilot.spec.models[0], pilot, gamma_takes_alphas_answer)
    result = run_pilot(pilot, RunOptions(out_dir=options.out_dir, backends={"fake": again}))
    assert again.seen == [f"fake/plan:alpha+beta:{i}" for i in range(10, 160)]
    assert result.decision.chosen.grouping.measured_plan
    assert result.evaluation.run["status"] == "complete"


def test_max_cost_covers_the_plan_calls(tmp_path: Path) -> None:
    """$3.60/h and 1 s a call: $0.001 a call. 480 single and 160 mixed calls fit in $0.6455; the plan's
    first 5 fit too, then the run stops and says so."""
    pilot = make_pilot(tmp_path, TASKS, items=160)
    backend = TimedFake(pilot.spec.models[0], pilot, gamma_takes_alphas_answer)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", max_cost_usd=0.6455, backends={"fake": backend}))
    assert result.stopped is not None and "155 calls not sent" in result.stopped
    assert sum(k.startswith("fake/plan:") for k in backend.seen) == 5
    # 5 of 160 plan calls are not the plan: it is priced from the pilot's mixed calls, and says so
    g = result.decision.chosen.grouping  # type: ignore[union-attr]
    assert g.mixed_tasks == ["alpha", "beta"] and not g.measured_plan
    assert g.economics.calls == 160  # the cost gate's n: the group's own mixed calls
    report = json.loads((result.run_dir / "report.json").read_text())
    roi = next(s for s in report["sections"] if s["id"] == "roi")["data"]["models"][0]
    assert "stopped short (5 calls" in roi["measured"]


def test_roi_plan_counts_the_measured_plan(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, TASKS, items=7)
    rows = {r.mode: r for r in plan_pilot(pilot).rows}
    assert rows["plan"].calls == rows["mixed"].calls == 7
    assert rows["plan"].at_most and "drops a task" in rows["plan"].note
    two = make_pilot(tmp_path, ("alpha", "beta"), items=7)
    assert "plan" not in {r.mode for r in plan_pilot(two).rows}  # dropping a task leaves no group


def test_no_plan_calls_when_every_task_may_share(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, TASKS, items=160)
    backend = FakeBackend(pilot.spec.models[0], pilot)
    run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", backends={"fake": backend}))
    assert not any("/plan:" in k for k in backend.seen)


def test_failed_plan_calls_have_their_gate_and_show(tmp_path: Path) -> None:
    """The plan's own calls are the group's: 8 of its 160 failing are judged like failed mixed calls, and
    their items count among the wrong answers, and a sample row of mode plan can be named."""
    pilot = make_pilot(tmp_path, TASKS, items=160)
    failing = {f"fake/plan:alpha+beta:{i}" for i in range(8)}
    backend = TimedFake(pilot.spec.models[0], pilot, gamma_takes_alphas_answer, fail_keys=failing)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", backends={"fake": backend}))
    assert result.decision is not None and result.decision.chosen.grouping.measured_plan
    by_mode = {g.mode: g for g in result.decision.chosen.gates if g.gate == "failed_calls"}
    assert set(by_mode) == {"single", "mixed", "plan"}
    assert (by_mode["plan"].value, by_mode["plan"].n) == (pytest.approx(8 / 160), 160)
    report = json.loads((result.run_dir / "report.json").read_text())
    failures = next(s for s in report["sections"] if s["id"] == "failures")["data"]
    assert "of 176 wrong answers" in json.dumps(failures)  # gamma's 160 swapped answers and 16 plan items
    assert (text("en", "mode.plan"), text("ja", "mode.plan")) == ("plan", "計画")  # a plan row can be named


def test_the_group_is_confirmed_on_its_own_calls(tmp_path: Path) -> None:
    """gamma is dropped on the mixed calls; alpha and beta answer right there, but beta answers wrong in the
    group's own calls: its accuracy gate, judged on the plan calls, fails and holds the stage."""

    def beta_fails_in_the_plan(query: Query, call: PromptCall) -> str | None:
        if call.mode == "plan" and query.task == "beta":
            return "nonsense"
        return gamma_takes_alphas_answer(query, call)

    pilot = make_pilot(tmp_path, TASKS, items=160)
    result = run_fake(pilot, tmp_path, beta_fails_in_the_plan)
    d = result.decision.chosen  # type: ignore[union-attr]
    assert d.grouping.mixed_tasks == ["alpha", "beta"] and d.grouping.measured_plan
    drop = {g.task: g for g in d.gates if g.gate == "accuracy_drop"}
    assert drop["beta"].value == pytest.approx(1.0) and drop["beta"].status.value == "fail"
    assert drop["alpha"].value == pytest.approx(0.0) and drop["alpha"].n == 160
    assert d.stage == 0
