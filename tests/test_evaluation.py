"""A finished run is evaluated once: summary.json, the store's summary and decision, the report and the
baseline check all come from one RunEvaluation; `roi report` evaluates the same way and leaves the
store as it found it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from roi import store
from roi.errors import RoiError
from roi.evaluation import evaluate_run
from roi.pilot import LoadedPilot, load_pilot
from roi.run_decision import brief, decision_brief
from roi.runner import RunOptions, RunResult, rebuild_report, run_pilot

from .conftest import PILOTS, lenient_demo
from .fakes import FakeBackend, Policy, gold
from .test_runner import swap_upper_and_capital_in_mixed


@pytest.fixture
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


def run(demo: LoadedPilot, out: Path, policy: Policy = gold) -> RunResult:
    backend = FakeBackend(demo.spec.models[0], demo, policy)
    return run_pilot(demo, RunOptions(out_dir=out, limit=3, fresh=True, backends={"gemma-270m": backend}))


def dump(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def test_the_run_folder_and_the_store_hold_one_evaluation(demo: LoadedPilot, tmp_path: Path) -> None:
    result = run(demo, tmp_path)
    evaluation = result.evaluation
    written = json.loads((result.run_dir / "summary.json").read_text())
    assert written == json.loads(json.dumps(evaluation.summary_data(), default=str))
    db = store.connect(result.db_path)
    row = store.get_run(db, result.run_id)
    assert row is not None and row["status"] == "complete" and row["finished_at"] == evaluation.run["finished_at"]
    assert json.loads(row["summary_json"]) == written
    assert decision_brief(db, result.run_id) == brief(evaluation.decision)
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["run"]["status"] == "complete" and report["decision"]["stage"] == evaluation.decision.stage
    # Evaluating the stored run again gives the same figures the end of the run wrote.
    again = evaluate_run(db, result.run_id)
    db.close()
    assert json.loads(json.dumps(again.summary_data(), default=str)) == written
    assert again.decision == evaluation.decision and again.check == evaluation.check


def test_roi_report_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    demo = load_pilot(lenient_demo(tmp_path / "pilot"))
    first = run(demo, tmp_path)
    second = run(demo, tmp_path, swap_upper_and_capital_in_mixed)  # a trend and a regression to report
    assert second.check.reference == first.run_id and second.check.regressed
    before = dump(second.db_path)
    written = (second.run_dir / "report.json").read_text()
    (second.run_dir / "report.json").unlink()
    files = rebuild_report(tmp_path, second.run_id)
    assert dump(second.db_path) == before
    assert files.json.read_text() == written
    trend = next(s for s in json.loads(written)["sections"] if s["id"] == "trend")["data"]
    assert [r["run_id"] for r in trend["rows"]] == [first.run_id, second.run_id] and trend["regressed"]


def test_a_run_of_another_store_is_a_user_error(demo: LoadedPilot, tmp_path: Path) -> None:
    run(demo, tmp_path)
    with pytest.raises(RoiError, match="no run 'missing'"):
        rebuild_report(tmp_path, "missing")
    with pytest.raises(RoiError, match="no run store here"):
        rebuild_report(tmp_path / "elsewhere", "missing")
    assert not (tmp_path / "elsewhere").exists()
