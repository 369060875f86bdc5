"""Accepted baselines: only complete runs; later runs compared with the newest accepted one; what
regressed (a dropped stage, a gate that passed and fails now, tasks worse beyond chance); the report's
trend section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roi import baseline, store
from roi.errors import RoiError
from roi.evaluation import evaluate_run
from roi.pilot import LoadedPilot, load_pilot
from roi.runner import RunOptions, RunResult, run_pilot

from .conftest import PILOTS, lenient_demo
from .fakes import FakeBackend, Policy, gold
from .test_runner import swap_upper_and_capital_in_mixed


@pytest.fixture
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


def run(demo: LoadedPilot, out: Path, policy: Policy = gold, limit: int = 30) -> RunResult:
    backend = FakeBackend(demo.spec.models[0], demo, policy)
    return run_pilot(demo, RunOptions(out_dir=out, limit=limit, fresh=True, backends={"gemma-270m": backend}))


def test_accept_only_a_complete_run(demo: LoadedPilot, tmp_path: Path) -> None:
    first = run(demo, tmp_path, limit=2)
    db = store.connect(tmp_path / "roi.db")
    with pytest.raises(RoiError, match="no run"):
        baseline.accept(db, "missing")
    with store.transaction(db):
        db.execute("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", (first.run_id,))
    with pytest.raises(RoiError, match="only a complete run"):
        baseline.accept(db, first.run_id)
    assert store.current_baseline(db, demo.name) is None


def test_regressions_against_the_accepted_baseline(tmp_path: Path) -> None:
    demo = load_pilot(lenient_demo(tmp_path / "pilot"))
    good = run(demo, tmp_path)
    assert good.check is not None and good.check.reference is None and not good.check.regressed
    bad = run(demo, tmp_path, swap_upper_and_capital_in_mixed)
    db = store.connect(tmp_path / "roi.db")
    assert baseline.accept(db, good.run_id) == demo.name
    again = run(demo, tmp_path, swap_upper_and_capital_in_mixed)
    check = again.check
    assert check is not None and check.reference == good.run_id and check.reference_is_baseline
    assert check.regressed
    kinds = {(r.kind, r.what) for r in check.regressions}
    assert ("gate", "all_tasks_mixed") in kinds
    assert ("accuracy", "accuracy upper/mixed") in kinds and ("accuracy", "accuracy en_fr/mixed") in kinds
    assert ("accuracy", "accuracy capital/mixed") not in kinds  # unchanged tasks are not flagged
    # Accepting the bad run makes it the reference: the same figures again regress nothing.
    baseline.accept(db, bad.run_id)
    same = evaluate_run(db, again.run_id).check
    assert same.reference == bad.run_id and same.regressions == [] and not same.regressed
    # Report of the regressed run: a trend section with the baseline marked and what regressed.
    report = json.loads((again.run_dir / "report.json").read_text())
    trend = next(s for s in report["sections"] if s["id"] == "trend")["data"]
    assert [r["run_id"] for r in trend["rows"]] == [good.run_id, bad.run_id, again.run_id]
    assert [r["baseline"] for r in trend["rows"]] == [True, False, False]  # as accepted when it was built
    assert trend["regressed"] is True and any("all_tasks_mixed" in r["text"] for r in trend["regressions"])
    html = (again.run_dir / "report.html").read_text()
    assert 'id="trend"' in html and "★" in html and "What regressed" in html


def test_stage_drop_is_a_regression() -> None:
    before = {
        "model": "m",
        "stage": 2,
        "outcome": "hold",
        "models": [
            {
                "model": "m",
                "gates": [
                    {"gate": "swap_rate", "task": "t", "status": "pass"},
                    {"gate": "items", "task": "t", "status": "more_data"},
                ],
            }
        ],
    }
    now = {
        "model": "m",
        "stage": 1,
        "outcome": "hold",
        "models": [
            {
                "model": "m",
                "gates": [
                    {"gate": "swap_rate", "task": "t", "status": "fail"},
                    {"gate": "items", "task": "t", "status": "fail"},
                ],
            }
        ],
    }
    found = baseline.decision_regressions(before, now)
    assert [(r.kind, r.what, r.before, r.now) for r in found] == [
        ("stage", "decision", "stage 2", "stage 1"),
        ("gate", "swap_rate (t)", "pass", "fail"),  # items was not passing before: not a regression
    ]
    assert baseline.decision_regressions(now, before)[:1] == []  # a rise is not a regression


def test_without_a_baseline_the_previous_run_at_the_same_limit_is_the_reference(tmp_path: Path) -> None:
    demo = load_pilot(lenient_demo(tmp_path / "pilot"))
    first = run(demo, tmp_path, limit=30)
    run(demo, tmp_path, limit=5)  # another limit: not comparable
    third = run(demo, tmp_path, swap_upper_and_capital_in_mixed, limit=30)
    assert third.check is not None and third.check.reference == first.run_id
    assert not third.check.reference_is_baseline and third.check.regressed and third.check.decision_changed is False
