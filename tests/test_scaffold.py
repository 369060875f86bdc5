"""`roi init` writes a pilot that validates and runs as written; `roi schema` describes every pilot."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from roi.cli import app
from roi.errors import RoiError
from roi.pilot import load_pilot
from roi.scaffold import SCHEMA_FILE, pilot_schema

from .conftest import PILOTS


def init(folder: Path, *args: str) -> list[Path]:
    result = CliRunner().invoke(app, ["init", *args, "--dir", str(folder)], env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_init_writes_a_valid_commented_pilot(tmp_path: Path) -> None:
    files = init(tmp_path, "triage", "--unit", "CS Osaka", "--owner", "me@example.com")
    assert [str(f) for f in files] == [
        "data/department_eval.csv",
        "data/department_examples.csv",
        "data/sentiment_eval.csv",
        "data/sentiment_examples.csv",
        SCHEMA_FILE,
        "triage.yaml",
    ]
    text = (tmp_path / "triage.yaml").read_text()
    assert text.startswith(f"# yaml-language-server: $schema=./{SCHEMA_FILE}\n")
    assert "# what one wrong answer costs the business" in text
    pilot = load_pilot(tmp_path / "triage.yaml")
    assert pilot.warnings == []
    assert pilot.spec.business_unit == "CS Osaka" and [t.spec.name for t in pilot.tasks] == ["sentiment", "department"]
    assert (tmp_path / "data/sentiment_eval.csv").read_text().startswith("id,input,output\n")


def test_init_with_own_tasks_and_an_api_model(tmp_path: Path) -> None:
    init(tmp_path, "mine", "--task", "urgency:low/medium/high", "--task", "summary", "--model", "openai:gpt-4o-mini")
    pilot = load_pilot(tmp_path / "mine.yaml")
    urgency, summary = pilot.spec.tasks
    assert urgency.scorer.type == "choice" and urgency.scorer.choices == ["low", "medium", "high"]
    assert summary.scorer.type == "exact"
    assert pilot.spec.models[0].backend == "openai" and pilot.spec.models[0].api_key_env == "OPENAI_API_KEY"


def readme_init_command() -> list[str]:
    """The `roi init` example of the README's walk-through, as its words."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    found = re.search(r"`roi (init [^`]+)`", readme)
    assert found is not None, "the README shows no roi init command"
    return shlex.split(found.group(1))


def test_the_readme_init_command_writes_a_valid_pilot(tmp_path: Path) -> None:
    command = readme_init_command()
    assert command[:3] == ["init", "my-pilot", "--task"] and len(command) == 4  # one task, as written there
    init(tmp_path, *command[1:])
    pilot = load_pilot(tmp_path / "my-pilot.yaml")
    assert [t.spec.name for t in pilot.tasks] == ["urgency", "sentiment"] and pilot.spec.modes.mixed.enabled
    text = (tmp_path / "my-pilot.yaml").read_text()
    assert "# a worked second task: mixed prompting needs two or more" in text
    for path in (tmp_path / "my-pilot.yaml", tmp_path / "data" / "urgency_eval.csv"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the data files will hold customer text


def test_init_names_the_next_commands_whole_at_80_columns(tmp_path: Path) -> None:
    folder = tmp_path / "a-rather-long-folder-name-for-the-pilot"
    result = CliRunner().invoke(app, ["init", "claims", "--dir", str(folder)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    pilot = folder / "claims.yaml"
    assert f"roi validate {pilot}" in lines and f"roi run {pilot} --limit 2" in lines


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    init(tmp_path, "triage")
    (tmp_path / "triage.yaml").write_text("mine")
    result = CliRunner().invoke(app, ["init", "triage", "--dir", str(tmp_path)])
    assert isinstance(result.exception, RoiError) and "already exists" in str(result.exception)
    assert (tmp_path / "triage.yaml").read_text() == "mine"
    init(tmp_path, "triage", "--force")
    assert load_pilot(tmp_path / "triage.yaml").name == "triage"


@pytest.mark.parametrize("bad", ["urgency:low", "no spaces allowed"])
def test_init_refuses_a_bad_task(tmp_path: Path, bad: str) -> None:
    result = CliRunner().invoke(app, ["init", "x", "--dir", str(tmp_path), "--task", bad])
    assert isinstance(result.exception, RoiError) and "--task" in str(result.exception)
    assert not any(tmp_path.iterdir())


def test_schema_accepts_every_example_pilot_and_catches_a_typo(tmp_path: Path) -> None:
    printed = CliRunner().invoke(app, ["schema"])
    schema = json.loads(printed.output)
    assert schema == pilot_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    init(tmp_path, "triage")
    for path in [*PILOTS.glob("*.yaml"), tmp_path / "triage.yaml"]:
        document = yaml.safe_load(path.read_text())
        assert list(validator.iter_errors(document)) == [], path
    document["modes"]["single"]["shot"] = 3
    assert [e.message for e in validator.iter_errors(document)] == [
        "Additional properties are not allowed ('shot' was unexpected)"
    ]


@pytest.mark.model
def test_init_output_runs_with_limit_2(tmp_path: Path) -> None:
    init(tmp_path, "fresh-pilot")
    env = {**os.environ, "COLUMNS": "80"}
    command = [sys.executable, "-m", "roi", "run", "fresh-pilot.yaml", "--limit", "2", "--out", "reports"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sentiment" in done.stdout and "department" in done.stdout
    assert list((tmp_path / "reports" / "fresh-pilot").glob("*/report.html"))
