"""Every exit code of `roi`: the README's table, `roi --help` and `roi.errors.ExitCode` say the same,
and a run whose model cannot load exits 1 with the run kept as `failed` (not `running`)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from roi.cli import app
from roi.errors import ExitCode

from .conftest import REPO
from .test_pilot import VALID


def readme_exit_codes() -> dict[int, str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)}


def test_readme_table_is_the_code() -> None:
    assert readme_exit_codes() == {int(code): code.meaning for code in ExitCode}


def test_help_lists_every_exit_code() -> None:
    shown = " ".join(CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output.split())
    for code in ExitCode:
        assert f"{int(code)} {code.meaning.split(' ')[0]}" in shown.replace("`", "")


def test_model_that_cannot_load_fails_the_run_with_exit_1(tmp_path: Path) -> None:
    """A folder that looks like a model (config.json) but is not one: preflight passes, loading fails."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    (tmp_path / "upper.csv").write_text("input,output\nhat,HAT\nsun,SUN\n")
    (tmp_path / "double.jsonl").write_text('{"input": "2", "output": "4"}\n{"input": "5", "output": "10"}\n')
    pilot = tmp_path / "pilot.yaml"
    pilot.write_text(VALID.replace("model: embedded", f"model: {broken}"))
    out = tmp_path / "out"
    env = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "roi", "run", str(pilot), "--out", str(out), "--quiet"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == ExitCode.FAILED_TO_RUN, done.stderr[-2000:]
    assert "model 'local' could not load" in done.stderr and "Traceback" not in done.stderr
    db = sqlite3.connect(out / "roi.db")
    try:
        ((status, finished),) = db.execute("SELECT status, finished_at FROM runs").fetchall()
    finally:
        db.close()
    assert status == "failed" and finished is not None
