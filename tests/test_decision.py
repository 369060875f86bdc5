"""The staged-rollout decision on hand-computed cases: a clear pass, a clear fail, an underpowered
pilot, one interfering task, unknown cost, failed calls. Runs use the deterministic fake backend with
fixed latencies (single call 1.0 s, mixed call 1.0 s for all its queries) and $3.60/h, so one single
item costs $0.001 and a mixed item $0.001 / (tasks per call).

Per-task intervals are simultaneous over the pilot's tasks (Bonferroni), so with T tasks they use the
normal quantile z = z_for(1 - 0.05 / T): 2.2414 for two tasks, 2.3940 for three. With every answer right
in both modes, Newcombe's paired interval of the drop is +-z^2 / (n + z^2): each Wilson interval of
31/31 reaches z^2 / (n + z^2) below 1 and none above, and the correlation is 0 because a margin is
empty. It is within a 5% limit from n >= 19 z^2: 96 items for two tasks, 109 for three."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from roi.backends import GenerationRequest, GenerationResult
from roi.decision import Status
from roi.pilot import LoadedPilot, load_pilot
from roi.prompts import PromptCall, Query
from roi.report.wording import decision_line, gate_reason, headline
from roi.runner import RunOptions, RunResult, run_pilot
from roi.stats import LEVEL, simultaneous_level, wilson, z_for
from roi.verdicts import accuracy_verdicts, judge, rate_verdicts

from .fakes import FakeBackend, Policy, gold

NAMED_OPS = {"reviewers": ["reviewer@example.com"], "escalation_contact": "lead@example.com"}


def make_pilot(
    folder: Path,
    tasks: Sequence[str] = ("alpha", "beta"),
    items: int = 40,
    *,
    cost: bool = True,
    operations: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> LoadedPilot:
    """A pilot whose task `t` maps `t-i` to `T-I`, with lenient gates so 40 items can pass them."""
    model: dict[str, Any] = {"name": "fake", "backend": "transformers", "model": "embedded"}
    if cost:
        model["cost"] = {"usd_per_hour": 3.6}
    spec = {
        "pilot": "decision-test",
        "business_unit": "Unit",
        "owner": "owner@example.com",
        "models": [model],
        "tasks": [
            {
                "name": t,
                "instruction": f"Answer {t}.",
                "examples": [{"input": f"{t}-x{i}", "output": f"{t.upper()}-X{i}"} for i in range(2)],
                "eval": [{"input": f"{t}-{i}", "output": f"{t.upper()}-{i}"} for i in range(items)],
                "scorer": "exact",
                "monthly_volume": 10000,
                "cost_per_error_usd": 1.0,
            }
            for t in tasks
        ],
        "modes": {"single": {"shots": 2}, "mixed": {"shots_per_task": 1}},
        "economics": {"pilot_investment_usd": 30, "horizon_months": 12},
        "gates": {
            "max_accuracy_drop": 0.05,
            "min_cost_saving": 0.2,
            "max_p95_latency_s": 5.0,
            "max_swap_rate": 0.1,
            "max_unparseable_rate": 0.1,
            "min_items_per_task": 30,
        },
        "operations": operations if operations is not None else NAMED_OPS,
        **(extra or {}),
    }
    path = folder / "pilot.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return load_pilot(path)


@dataclasses.dataclass
class TimedFake(FakeBackend):
    """The fake backend with a fixed wall time and machine time per call: 1.0 s, whatever the mode."""

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        for result in super().generate(requests):
            yield dataclasses.replace(result, latency_s=1.0, machine_s=1.0)


def run_fake(pilot: LoadedPilot, folder: Path, policy: Policy = gold, limit: int | None = None) -> RunResult:
    backend = TimedFake(pilot.spec.models[0], pilot, policy)
    return run_pilot(pilot, RunOptions(out_dir=folder / "out", limit=limit, backends={"fake": backend}))


def wrong_in_mixed(query: Query, call: PromptCall) -> str | None:
    return query.item.output if call.mode == "single" else "nonsense"


def gamma_takes_alphas_answer(query: Query, call: PromptCall) -> str | None:
    if call.mode == "mixed" and query.task == "gamma":
        return next(q.item.output for q in call.queries if q.task == "alpha")
    return query.item.output


def gate(result: RunResult, name: str, task: str | None = None) -> Any:
    assert result.decision is not None
    return next(g for g in result.decision.chosen.gates if g.gate == name and g.task == task)


# ---------------------------------------------------------------- the judging rule itself


def test_judge_on_the_worst_end() -> None:
    # drop 2% [-1%, 4%] within a 5% margin with 40 items: pass
    assert judge(0.02, -0.01, 0.04, 0.05, upper=True, n=40, min_n=30) is Status.PASS
    # same estimate, worst end 6%: more data
    assert judge(0.02, -0.01, 0.06, 0.05, upper=True, n=40, min_n=30) is Status.MORE_DATA
    # the estimate beyond the limit but not the whole interval: more data, never a conclusive fail
    assert judge(0.10, 0.03, 0.20, 0.05, upper=True, n=40, min_n=30) is Status.MORE_DATA
    # even the best end is beyond: fail, however few items
    assert judge(0.5, 0.2, 0.8, 0.05, upper=True, n=4, min_n=30) is Status.FAIL
    # an unbounded worst end (too few calls for an order statistic) is more data
    assert judge(1.0, 0.9, None, 5.0, upper=True, n=40, min_n=30) is Status.MORE_DATA
    # a lower limit (cost saving at least 20%): worst end is the low one
    assert judge(0.5, 0.6, 0.3, 0.2, upper=False, n=40, min_n=30) is Status.PASS
    assert judge(0.1, 0.15, 0.05, 0.2, upper=False, n=40, min_n=30) is Status.FAIL
    assert judge(None, None, None, 0.2, upper=False, n=40, min_n=30) is Status.UNKNOWN


def needed_all_right(tasks: int, limit: float = 0.05) -> int:
    return math.ceil(z_for(1 - 0.05 / tasks) ** 2 * (1 - limit) / limit)


# ---------------------------------------------------------------- whole decisions


def test_every_answer_right_at_31_items_needs_more_data(tmp_path: Path) -> None:
    """The black-box case: every answer right in both modes, 31 items, three tasks, a 5% limit. A
    bootstrap of paired differences collapses to [0, 0] and passes; the paired score interval does not."""
    result = run_fake(make_pilot(tmp_path, ("alpha", "beta", "gamma"), items=31), tmp_path)
    drop = gate(result, "accuracy_drop", "alpha")
    z2 = z_for(1 - 0.05 / 3) ** 2
    assert drop.status is Status.MORE_DATA and drop.value == 0.0
    assert drop.worst == pytest.approx(z2 / (31 + z2)) and drop.low == pytest.approx(-drop.worst)
    assert drop.worst > 0.15  # three times the limit
    assert drop.items_needed == needed_all_right(3) == 109
    assert drop.level == pytest.approx(1 - 0.05 / 3)
    d = result.decision
    assert d is not None and d.stage == 0 and d.outcome == "more_data" and d.chosen.items_needed == 109
    assert "about 109 items per task" in headline(d, "en")
    placements = {p.task: (p.placement, p.items_needed) for p in d.chosen.grouping.placements}
    assert placements == dict.fromkeys(("alpha", "beta", "gamma"), ("undecided", 109))


def test_clear_pass_reaches_expand(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, items=150)
    result = run_fake(pilot, tmp_path)
    d = result.decision
    assert d is not None and d.stage == 3 and d.outcome == "ready"
    assert all(g.status is Status.PASS for g in d.chosen.gates)
    # single: $0.001 per item; mixed: one 1.0 s call answers 2 items -> $0.0005; saving exactly 50%
    saving = gate(result, "cost_saving")
    assert saving.value == pytest.approx(0.5) and saving.low == pytest.approx(0.5)
    assert saving.n == 150 and saving.unit == "calls"
    plan = d.chosen.grouping.economics
    # 2 tasks x 10,000 a month: $20 single, $10 mixed, no errors -> $10 a month; payback 30 / 10 = 3 months
    assert plan.monthly_compute_single_usd.value == pytest.approx(20.0)
    assert plan.net_monthly_benefit_usd.value == pytest.approx(10.0)
    assert plan.payback_months.value == pytest.approx(3.0)
    assert plan.roi.value == pytest.approx((10 * 12 - 30) / 30)
    # zero swaps in 150 items at the two-task level: Wilson upper z^2 / (150 + z^2) <= 10%
    assert gate(result, "swap_rate", "alpha").worst == pytest.approx(wilson(0, 150, z_for(0.975)).high)
    # 150 mixed calls of 1.0 s: the 97.5% upper bound of p95 is an order statistic, i.e. 1.0 s
    latency = gate(result, "p95_latency")
    assert (latency.value, latency.high, latency.n, latency.unit) == (1.0, 1.0, 150, "calls")
    assert headline(d, "en").startswith("Go to stage 3 (Expand) with fake")
    assert decision_line(d).startswith("Stage 3 (expand)")


def test_clear_fail_holds_at_pilot(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path), tmp_path, wrong_in_mixed)
    d = result.decision
    assert d is not None and d.stage == 0 and d.outcome == "hold"
    drop = gate(result, "accuracy_drop", "alpha")
    assert drop.status is Status.FAIL and drop.value == pytest.approx(1.0) and drop.worst == pytest.approx(1.0)
    assert drop.low is not None and drop.low > 0.05  # the whole interval is beyond the limit
    g = d.chosen.grouping
    assert g.mixed_tasks == [] and {p.placement for p in g.placements} == {"keep_single"}
    assert all(p.failing_gates == ["accuracy_drop"] for p in g.placements)
    assert "group_exists" in {x.gate for x in d.chosen.blocking}
    text = headline(d, "en")
    assert "Do not roll out" in text and "tasks that can share a call" in text
    assert "混合プロンプト導入はまだ行わない" in headline(d, "ja")


def test_true_drop_of_twice_the_limit_never_passes(tmp_path: Path) -> None:
    # mixed answers every tenth item wrong: a drop of exactly 10% against a 5% limit
    def every_tenth(query: Query, call: PromptCall) -> str | None:
        wrong = call.mode == "mixed" and int(query.item.id) % 10 == 0  # item ids are 1..n
        return "nonsense" if wrong else query.item.output

    for items in (40, 300):
        folder = tmp_path / str(items)
        folder.mkdir()
        result = run_fake(make_pilot(folder, items=items), folder, every_tenth)
        drop = gate(result, "accuracy_drop", "alpha")
        assert drop.value == pytest.approx(0.1) and drop.status is not Status.PASS
        assert result.decision is not None and result.decision.stage == 0
    # with 300 items the whole interval is past the limit: the task is kept single
    assert drop.status is Status.FAIL and drop.low is not None and drop.low > 0.05


def test_underpowered_pilot_asks_for_more_items(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path), tmp_path, limit=5)
    d = result.decision
    assert d is not None and d.stage == 0 and d.outcome == "more_data"
    assert gate(result, "items", "alpha").status is Status.MORE_DATA
    # unparseable 0 of n at z = 2.2414: Wilson upper z^2 / (n + z^2) <= 10% first at n = 9 z^2 = 45.2 -> 46
    assert gate(result, "unparseable_rate", "alpha").items_needed == 46
    # every answer right: the accuracy gate settles at 96 items (module docstring), the most of any gate
    assert gate(result, "accuracy_drop", "alpha").items_needed == needed_all_right(2) == 96
    assert d.chosen.items_needed == 96
    text = headline(d, "en")
    assert "Collect more data" in text and "about 96 items per task" in text and "(now 5)" in text


def test_one_interfering_task_stays_single_and_the_rest_go_ahead(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, ("alpha", "beta", "gamma"), items=160)
    result = run_fake(pilot, tmp_path, gamma_takes_alphas_answer)
    d = result.decision
    assert d is not None
    g = d.chosen.grouping
    assert g.mixed_tasks == ["alpha", "beta"] and g.single_tasks == ["gamma"]
    gamma = next(p for p in g.placements if p.task == "gamma")
    assert gamma.placement == "keep_single" and gamma.failing_gates == ["accuracy_drop"]
    assert gamma.swaps_from == {"alpha": 160}
    assert not gate(result, "swap_rate", "gamma").counted
    # stage 2 holds for alpha + beta; stage 3 fails because gamma stays single
    assert d.stage == 2 and d.outcome == "hold"
    assert [x.gate for x in d.chosen.blocking] == ["all_tasks_mixed"]
    # the plan measured in calls of its own: alpha, beta at $0.001 / 2, gamma single at $0.001 -> 2/3 of
    # all single (the 3-task calls would have claimed $0.001 / 3 each, a saving of 4/9)
    assert g.measured_plan and g.economics.cost_saving.value == pytest.approx(1 / 3)
    # gamma's errors stay out of the plan, so the plan's error cost equals all-single's (zero)
    assert g.economics.monthly_error_plan_usd.value == pytest.approx(0.0)
    assert g.all_mixed_economics.monthly_error_plan_usd.value == pytest.approx(10000 * 1.0)
    text = headline(d, "en")
    assert "Go to stage 2 (Limited)" in text and "Keep gamma on single prompts" in text


def test_a_stage_two_gate_does_not_remove_a_task_from_the_stage_one_plan(tmp_path: Path) -> None:
    # beta answers two of 200 mixed queries with alpha's gold answer: 1% swaps against a 2% limit
    def two_swaps(query: Query, call: PromptCall) -> str | None:
        if call.mode == "mixed" and query.task == "beta" and query.item.id in {"1", "2"}:
            return next(q.item.output for q in call.queries if q.task == "alpha")
        return query.item.output

    pilot = make_pilot(tmp_path, items=200, extra={"gates": {"max_swap_rate": 0.02, "max_p95_latency_s": 5.0}})
    result = run_fake(pilot, tmp_path, two_swaps)
    d = result.decision
    assert d is not None
    assert gate(result, "accuracy_drop", "beta").status is Status.PASS  # a 1% drop, worst end 4.2%
    swaps = gate(result, "swap_rate", "beta")
    assert swaps.value == pytest.approx(2 / 200) and swaps.status is Status.MORE_DATA and swaps.counted
    assert d.chosen.grouping.mixed_tasks == ["alpha", "beta"]  # beta stays in the group
    # zero swaps in 200 items still allow 2.4% at the two-task level, so alpha's swap gate waits too
    assert d.stage == 1 and d.outcome == "more_data"
    assert [(x.gate, x.task) for x in d.chosen.blocking] == [("swap_rate", "alpha"), ("swap_rate", "beta")]


def test_unknown_cost_cannot_pass_the_cost_gate(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path, items=140, cost=False), tmp_path)
    d = result.decision
    assert d is not None and d.stage == 0 and d.outcome == "unknown"
    cost = gate(result, "cost_saving")
    assert cost.status is Status.UNKNOWN and cost.value is None
    assert d.chosen.grouping.economics.net_monthly_benefit_usd.value is None
    assert "cost gate cannot be judged" in headline(d, "en")
    assert "コスト基準は判定できません" in headline(d, "ja")


def test_operations_not_named_stops_at_shadow(tmp_path: Path) -> None:
    result = run_fake(make_pilot(tmp_path, items=140, operations={}), tmp_path)
    d = result.decision
    assert d is not None and d.stage == 1 and d.outcome == "hold"
    assert [x.gate for x in d.chosen.blocking] == ["operations"]


@pytest.mark.parametrize(("items", "status"), [(4, Status.MORE_DATA), (6, Status.FAIL)])
def test_few_items_fail_only_when_mcnemar_agrees(tmp_path: Path, items: int, status: Status) -> None:
    # every mixed answer wrong, every single right: the paired interval lies above the limit at any n,
    # but McNemar's exact p is 2 / 2^4 = 0.125 for 4 items (not a failure yet) and 2 / 2^6 = 0.031 for 6
    result = run_fake(make_pilot(tmp_path), tmp_path, wrong_in_mixed, limit=items)
    drop = gate(result, "accuracy_drop", "alpha")
    assert drop.status is status and drop.worst == pytest.approx(1.0)
    assert result.decision is not None
    if status is Status.MORE_DATA:
        assert drop.items_needed is None  # the estimate is beyond the margin: no projection
        assert result.decision.outcome == "more_data" and result.decision.chosen.items_needed is None
        assert "the estimate 100% is beyond the limit 5% with only n=4" in gate_reason(drop, "en")
        assert "cannot say how many" in headline(result.decision, "en")
    else:
        assert result.decision.outcome == "hold"


def test_failed_calls_count_as_wrong_and_have_their_gate(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, items=160)
    failing = {f"fake/mixed:g0:{i}" for i in range(8)}  # 8 of 160 mixed calls fail: 5%
    backend = TimedFake(pilot.spec.models[0], pilot, gold, fail_keys=failing)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", backends={"fake": backend}))
    by_mode = {g.mode: g for g in result.decision.chosen.gates if g.gate == "failed_calls"}  # type: ignore[union-attr]
    assert by_mode["single"].status is Status.PASS and by_mode["single"].n == 320
    failed = by_mode["mixed"]
    assert (failed.value, failed.n, failed.unit) == (0.05, 160, "calls")
    assert failed.worst == pytest.approx(wilson(8, 160).high) and failed.status is Status.MORE_DATA
    # the 8 failed calls' items count as wrong in mixed mode: a drop of 5% on each task
    drop = gate(result, "accuracy_drop", "alpha")
    assert drop.value == pytest.approx(8 / 160) and drop.n == 160
    assert result.summary.cells[1].accuracy.k == 152  # alpha mixed: 160 items, 8 of failed calls


def test_failed_single_calls_are_left_out_of_the_comparison(tmp_path: Path) -> None:
    """An item whose single call failed has no single answer: counted wrong, it would credit mixing with
    single's failures (a drop of 0 would read as a gain of 5%). Its pair is left out, and counted."""
    pilot = make_pilot(tmp_path, items=160)
    failing = {f"fake/single:alpha:{i}" for i in range(1, 9)}
    backend = TimedFake(pilot.spec.models[0], pilot, gold, fail_keys=failing)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", backends={"fake": backend}))
    drop = gate(result, "accuracy_drop", "alpha")
    assert drop.value == pytest.approx(0.0) and drop.n == 152  # mixing gained nothing: every answer is right
    alpha = {c.mode: c for c in result.summary.cells if c.task == "alpha"}
    assert alpha["single"].accuracy.k == 152 and alpha["single"].accuracy.n == 160  # still wrong in single
    assert alpha["mixed"].vs_single is not None and alpha["mixed"].single_failed == 8
    by_mode = {g.mode: g for g in result.decision.chosen.gates if g.gate == "failed_calls"}  # type: ignore[union-attr]
    assert by_mode["single"].value == pytest.approx(8 / 320)
    # the money compares the same pairs: all single is not charged for errors its failed calls made
    plan = result.decision.chosen.grouping.all_mixed_economics  # type: ignore[union-attr]
    assert plan.monthly_error_single_usd.value == pytest.approx(0.0)


@dataclasses.dataclass
class SlowMixed(FakeBackend):
    """Mixed calls take 4.0 s for two items: each mixed item costs twice a single one (saving -100%)."""

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        for result in super().generate(requests):
            seconds = 4.0 if "/mixed:" in result.key else 1.0
            yield dataclasses.replace(result, latency_s=seconds, machine_s=seconds)


@pytest.mark.parametrize(("items", "status"), [(5, Status.MORE_DATA), (40, Status.FAIL)])
def test_cost_gate_fails_only_on_enough_calls(tmp_path: Path, items: int, status: Status) -> None:
    pilot = make_pilot(tmp_path)
    backend = SlowMixed(pilot.spec.models[0], pilot)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", limit=items, backends={"fake": backend}))
    saving = gate(result, "cost_saving")
    # every call costs the same, so the bootstrap interval is the point [-100%, -100%]: below 30 calls it
    # is not trusted to fail
    assert (saving.value, saving.low, saving.n) == (pytest.approx(-1.0), pytest.approx(-1.0), items)
    assert saving.status is status and (saving.items_needed is None)


def mixed_errs_more(query: Query, call: PromptCall) -> str | None:
    """Items go either way, by item number: alpha barely (its gates pass), beta more against mixing, with
    one in 13 mixed answers unparseable (more data), gamma far more (its accuracy gate fails)."""
    i = int(query.item.id.rsplit("-", 1)[-1]) if "-" in query.item.id else int(query.item.id)
    wrong = "nonsense"
    if query.task == "alpha":
        bad = i % 160 == (0 if call.mode == "mixed" else 80)
    elif query.task == "gamma":
        bad = i % 3 == 0 if call.mode == "mixed" else i % 40 == 1
    elif call.mode == "mixed":
        bad, wrong = i % 6 == 0 or i % 11 == 3 or i % 13 == 5, "" if i % 13 == 5 else wrong
    else:
        bad = i % 11 in (3, 7)
    return wrong if bad else query.item.output


def test_the_decision_judges_what_the_calibration_judges(tmp_path: Path) -> None:
    """The glue between the store and the gates (metrics, paired tables, gates) gives the same statuses and
    ends as the vectorised rules the calibration runs (roi.verdicts) on the same counts."""
    pilot = make_pilot(tmp_path, ("alpha", "beta", "gamma"), items=160)
    result = run_fake(pilot, tmp_path, mixed_errs_more)
    items = result.evaluation.items
    z = z_for(simultaneous_level(LEVEL, 3))
    limits, statuses = pilot.spec.gates, set()
    for task in ("alpha", "beta", "gamma"):
        own = items[items["task"] == task]
        pair = own[own["mode"] == "single"].merge(own[own["mode"] == "mixed"], on="item_id", suffixes=("_s", "_m"))
        s, m = pair["correct_s"].astype(bool), pair["correct_m"].astype(bool)
        table = [int((s & m).sum()), int((s & ~m).sum()), int((~s & m).sum()), int((~s & ~m).sum())]
        assert table[1] > 0 and table[2] > 0  # items go either way
        v = accuracy_verdicts(*table, limit=limits.max_accuracy_drop, z=z, min_n=limits.min_items_per_task)
        g = gate(result, "accuracy_drop", task)
        assert (g.status.value, g.n) == (str(v.status[0]), sum(table))
        assert (g.value, g.worst) == (pytest.approx(float(v.drop[0])), pytest.approx(float(v.worst[0])))
        mixed = own[own["mode"] == "mixed"]
        k = int((mixed["parsed"] == 0).sum())
        r = rate_verdicts(k, len(mixed), limit=limits.max_unparseable_rate, z=z, min_n=limits.min_items_per_task)
        u = gate(result, "unparseable_rate", task)
        assert u.status.value == str(np.asarray(r[3]).item()) and u.worst == pytest.approx(float(r[2]))
        statuses.add((g.status.value, u.status.value))
    assert statuses == {("pass", "pass"), ("more_data", "more_data"), ("fail", "pass")}
