"""The analyst's mistakes the schema cannot see, through the CLI as an analyst meets them: each is an
error at file:line field (exit 2, no traceback, nothing written) or a named warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roi.cli import app
from roi.errors import RoiError
from roi.pilot import load_pilot
from roi.planning import plan_pilot

from .test_console import console_pilot, half_right
from .test_pilot import VALID, WriteFile, pilot_dir, problems_of  # noqa: F401  (pilot_dir is a fixture)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if isinstance(result.exception, RoiError):  # main() prints these; the bare app leaves them raised
        return 2, str(result.exception)
    return result.exit_code, result.output


def test_csv_header_in_any_case_loads(pilot_dir: Path) -> None:  # noqa: F811
    (pilot_dir / "upper.csv").write_text(" Input ,OUTPUT,Id\nhat,HAT,h1\nsun,SUN,s1\n")
    pilot = load_pilot(pilot_dir / "pilot.yaml")
    assert [(e.id, e.input, e.output) for e in pilot.tasks[0].examples] == [("h1", "hat", "HAT"), ("s1", "sun", "SUN")]


def test_wrong_csv_header_shows_what_was_found(pilot_dir: Path) -> None:  # noqa: F811
    (pilot_dir / "upper.csv").write_text("text,label\nhat,HAT\n")
    message = problems_of(pilot_dir / "pilot.yaml")
    assert "upper.csv:1: missing column(s) input, output: the header row is text,label" in message
    assert "pilot.yaml:12 tasks[0].examples" in message


def test_missing_monthly_volume_is_a_named_warning(pilot_dir: Path) -> None:  # noqa: F811
    path = pilot_dir / "pilot.yaml"
    volume = "scorer: {type: numeric}\n    monthly_volume: 900"
    path.write_text(VALID.replace("scorer: {type: numeric, tolerance: 0.5}", volume))
    pilot = load_pilot(path)
    assert [(w.field, w.name, w.line) for w in pilot.warnings] == [("tasks[0].monthly_volume", "no-monthly-volume", 10)]
    code, output = invoke("validate", str(path))
    assert code == 0
    assert "1 warning(s)" in output


def test_tasks_without_a_volume_share_one_warning(pilot_dir: Path) -> None:  # noqa: F811
    result = subprocess.run(
        [sys.executable, "-m", "roi", "validate", str(pilot_dir / "pilot.yaml")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert "pilot.yaml:10 tasks[0].monthly_volume, :17 tasks[1].monthly_volume: monthly_volume is not set" in warning
    assert "2 warning(s)" in result.stdout


def test_the_same_mistake_in_two_places_is_one_error_naming_both(pilot_dir: Path) -> None:  # noqa: F811
    path = pilot_dir / "pilot.yaml"
    path.write_text(VALID.replace("    instruction:", "    monthly_volume: ten\n    instruction:"))
    result = subprocess.run(
        [sys.executable, "-m", "roi", "validate", str(path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    (error,) = [line for line in result.stderr.splitlines() if "monthly_volume" in line]
    assert "pilot.yaml:11 tasks[0].monthly_volume, :19 tasks[1].monthly_volume: should be" in error
    assert "(got 'ten')" in error


def test_local_model_not_on_disk_fails_validate_plan_and_run(pilot_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    path = pilot_dir / "pilot.yaml"
    path.write_text(VALID.replace("model: embedded", "model: models/not-here"))
    out = tmp_path / "out"
    for command in ("validate", "plan", "run"):
        args = [command, str(path)] + ([] if command == "validate" else ["--out", str(out)])
        code, message = invoke(*args)
        assert code == 2, args
        assert "pilot.yaml:7 models[0].model: model 'local': not found on disk" in message
        assert "models/not-here" in message
    assert not out.exists()  # nothing written, no run left "running"


def test_plan_lists_the_mixed_groups(write_file: WriteFile, tmp_path: Path) -> None:
    pilot = console_pilot(tmp_path)
    assert plan_pilot(pilot).mixed_groups == [["urgency", "department", "language_code"]]
    text = pilot.path.read_text().replace("shots_per_task: 1", "shots_per_task: 1\n    tasks_per_call: 2")
    # three tasks two at a time: the lone third joins the previous group, as in a run
    regrouped = load_pilot(write_file("regrouped.yaml", text))
    assert plan_pilot(regrouped).mixed_groups == [["urgency", "department", "language_code"]]
    code, output = invoke("plan", str(pilot.path), "--out", str(tmp_path / "none"))
    assert code == 0
    assert "mixed group 1 (one call answers one item of each): urgency, department, language_code" in output


def test_plan_estimates_time_only_from_the_same_model(tmp_path: Path) -> None:
    from roi.runner import RunOptions, run_pilot

    from .fakes import FakeBackend

    pilot = console_pilot(tmp_path)
    model = pilot.spec.models[0]
    run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", backends={model.name: FakeBackend(model, pilot, half_right)}))
    db = tmp_path / "out" / "roi.db"
    assert all(r.time_s is not None for r in plan_pilot(pilot, None, db).rows)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / "config.json").write_text("{}")
    swapped = pilot.path.read_text().replace("model: embedded", f"model: {other_dir}")
    (tmp_path / "swapped.yaml").write_text(swapped)
    rows = plan_pilot(load_pilot(tmp_path / "swapped.yaml"), None, db).rows
    assert all(r.time_s is None and "no earlier run" in r.time_basis for r in rows)  # same name, other model


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_every_mistake_of_the_day_at_once(pilot_dir: Path, command: str) -> None:  # noqa: F811
    """A pilot with several mistakes reports each one, not only the first."""
    path = pilot_dir / "pilot.yaml"
    path.write_text(VALID.replace("shots: 2", "shot: 2").replace("backend: transformers", "backend: transformer"))
    code, message = invoke(command, str(path))
    assert code == 2
    assert "did you mean 'shots'?" in message and "did you mean 'transformers'?" in message
    assert "Input should be" not in message
