"""The pilot settings kept with each run: compare, the run's end and the report's trend say when two
runs asked differently (a shot count changed, a few-shot file edited), and what changed."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from roi import compare, console, store
from roi.evaluation import evaluate_run
from roi.fingerprint import differences, fingerprint, pilot_settings
from roi.pilot import LoadedPilot, load_pilot
from roi.report.sections import ReportInputs
from roi.report.trend import build_trend
from roi.runner import RunOptions, RunResult, run_pilot

from .fakes import FakeBackend
from .test_decision import make_pilot


def run(pilot: LoadedPilot, out: Path) -> RunResult:
    return run_pilot(pilot, RunOptions(out_dir=out, backends={"fake": FakeBackend(pilot.spec.models[0], pilot)}))


def edited(pilot: LoadedPilot, change: dict[str, object]) -> LoadedPilot:
    spec = yaml.safe_load(pilot.path.read_text())
    spec["modes"]["single"].update(change)
    spec["tasks"][0]["examples"][0]["output"] = "ALPHA-CHANGED"
    pilot.path.write_text(yaml.safe_dump(spec))
    return load_pilot(pilot.path)


def test_settings_ignore_names_and_routing_but_not_data(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, items=3)
    settings = pilot_settings(pilot)
    assert "owner" not in settings and "business_unit" not in settings
    assert settings["tasks"][0]["examples"].startswith("2 rows, sha256 ")
    renamed = pilot.spec.model_copy(update={"owner": "someone.else@example.com"})
    same = LoadedPilot(renamed, pilot.path, pilot.sha256, pilot.tasks)
    assert fingerprint(pilot_settings(same)) == fingerprint(settings)
    changed = edited(pilot, {"shots": 1})
    assert "modes.single.shots: 2 → 1" in differences(settings, pilot_settings(changed))


def test_compare_and_run_end_name_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pilot = make_pilot(tmp_path, items=3)
    first = run(pilot, tmp_path / "out")
    second = run(edited(pilot, {"shots": 1}), tmp_path / "out")
    changes = second.evaluation.settings
    assert changes is not None and changes.against == first.run_id and changes.known
    assert "modes.single.shots: 2 → 1" in changes.changes and len(changes.changes) == 2
    assert any(c.startswith("tasks.alpha.examples: 2 rows, sha256 ") for c in changes.changes)
    db = store.connect(first.db_path)
    try:
        result = compare.compare_runs(db, first.run_id, second.run_id)
        same = compare.compare_runs(db, first.run_id, first.run_id)
    finally:
        db.close()
    assert result.settings is not None and result.settings.changes == changes.changes
    assert same.settings is not None and same.settings.same
    screen = Console(width=80, file=io.StringIO(), color_system=None)
    monkeypatch.setattr(console, "out", screen)  # restored after the test: later tests print to stdout
    console.show_comparison(result)
    shown = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "The pilot's settings differ between A and B:" in shown and "modes.single.shots: 2 → 1" in shown


def test_trend_marks_runs_with_other_settings(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, items=3)
    first = run(pilot, tmp_path / "out")
    second = run(edited(pilot, {"shots": 1}), tmp_path / "out")
    db = store.connect(second.db_path)
    try:
        evaluation = evaluate_run(db, second.run_id)
    finally:
        db.close()
    trend = build_trend(ReportInputs(evaluation, "en"))
    assert trend is not None
    assert [r["settings"] for r in trend["rows"]] == ["changed", "same"]
    assert trend["settings"]["text"].startswith(f"The pilot's settings differ from {first.run_id}'s")
    assert "modes.single.shots: 2 → 1" in trend["settings"]["changes"]


def test_runs_stored_before_settings_were_kept(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, items=3)
    first = run(pilot, tmp_path / "out")
    raw = sqlite3.connect(first.db_path)
    raw.execute("UPDATE runs SET pilot_settings_json = NULL, pilot_fingerprint = NULL")
    raw.commit()
    raw.close()
    second = run(edited(pilot, {"shots": 1}), tmp_path / "out")
    assert second.evaluation.settings is not None and not second.evaluation.settings.known
