"""The terminal at 80 and 120 columns: every table fits, no cell is broken mid-word or cut short, tasks
and models keep the pilot's order. Runs use the deterministic fake backend (a long model name, task
names out of alphabetical order; then two models of more than 20 characters and a 22-character task);
one test runs the installed `roi history` as users do."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.testing import CliRunner

from roi import compare, console, history, store
from roi.cli import app
from roi.pilot import LoadedPilot, load_pilot
from roi.planning import plan_pilot
from roi.prompts import PromptCall, Query
from roi.runner import RunOptions, RunResult, run_pilot
from roi.stats import wilson

from .fakes import FakeBackend

MODEL = "gemma-3-270m-it-q4"
TASKS = ("urgency", "department", "language_code")  # not alphabetical: the pilot's order must survive
WIDTHS = (80, 120)
LOCAL = {"name": MODEL, "backend": "transformers", "model": "embedded", "cost": {"usd_per_hour": 0.4}}
# A local model against an API model, both with long names, and a long task name: the common case.
TWO_MODELS = [
    {**LOCAL, "name": "gemma-3-270m-it-q4-local-cpu"},
    {
        "name": "gpt-4o-mini-2024-07-18-eu-api",
        "backend": "openai",
        "model": "gpt-4o-mini",
        "base_url": "http://127.0.0.1:9/v1",  # never called: the fake backend answers
        "price": {"input_per_1m": 0.15, "output_per_1m": 0.6},
    },
]
LONG_TASKS = ("urgency", "customer_language_code")


def half_right(query: Query, call: PromptCall) -> str | None:
    """Right on even items; in mixed calls the odd items get another answer (accuracy drops)."""
    number = int(query.item.input.rsplit("-", 1)[1])
    return query.item.output if number % 2 == 0 or call.mode == "single" else "wrong"


def console_pilot(
    folder: Path, models: list[dict[str, Any]] | None = None, tasks: tuple[str, ...] = TASKS
) -> LoadedPilot:
    spec = {
        "pilot": "support-console",
        "business_unit": "Unit",
        "owner": "owner@example.com",
        "models": models or [LOCAL],
        "tasks": [
            {
                "name": t,
                "instruction": f"Answer {t}.",
                "examples": [{"input": f"{t}-x{i}", "output": f"{t.upper()}-X{i}"} for i in range(2)],
                "eval": [{"input": f"{t}-{i}", "output": f"{t.upper()}-{i}"} for i in range(12)],
                "scorer": "exact",
                "monthly_volume": 10000,
            }
            for t in tasks
        ],
        "modes": {"single": {"shots": 2}, "mixed": {"shots_per_task": 1}},
    }
    path = folder / "pilot.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_pilot(path)


def two_runs(folder: Path, pilot: LoadedPilot) -> tuple[LoadedPilot, RunResult, RunResult]:
    """Two runs of one pilot: the second is answered from the response cache."""
    fakes = {m.name: FakeBackend(m, pilot, half_right) for m in pilot.spec.models}
    options = RunOptions(out_dir=folder / "out", backends=fakes)
    first = run_pilot(pilot, options)
    second = run_pilot(pilot, options)
    return pilot, first, second


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedPilot, RunResult, RunResult]:
    folder = tmp_path_factory.mktemp("console")
    return two_runs(folder, console_pilot(folder))


@pytest.fixture(scope="module")
def long_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedPilot, RunResult, RunResult]:
    folder = tmp_path_factory.mktemp("long-names")
    return two_runs(folder, console_pilot(folder, TWO_MODELS, LONG_TASKS))


@pytest.fixture(params=WIDTHS)
def screen(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    terminal = Console(width=request.param, file=io.StringIO(), color_system=None, legacy_windows=False)
    monkeypatch.setattr(console, "out", terminal)
    yield terminal


def printed(terminal: Console) -> str:
    file = terminal.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def cell_words(grid: Table) -> list[str]:
    """Every whitespace-separated word of every header and cell of a table."""
    words: list[str] = []
    for column in grid.columns:
        for cell in [column.header, *column.cells]:
            shown = cell.plain if isinstance(cell, Text) else str(cell)
            words += shown.split()
    return words


def assert_fits(output: str, width: int, words: list[str]) -> None:
    lines = [line for line in output.splitlines() if "files in /" not in line]  # paths stay whole
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert "…" not in output  # nothing cut short
    for word in words:
        # the word whole, between blanks or line ends: a broken cell shows it in two pieces
        assert re.search(rf"(?<!\S){re.escape(word)}(?!\S)", output), f"{word!r} broken at {width} columns"


def history_rows(runs: tuple[LoadedPilot, RunResult, RunResult]) -> list[history.HistoryRow]:
    pilot, first, _ = runs
    db = store.connect(first.db_path)
    try:
        return history.history(db, pilot.name)
    finally:
        db.close()


def comparison(runs: tuple[LoadedPilot, RunResult, RunResult]) -> compare.Comparison:
    _, first, second = runs
    db = store.connect(first.db_path)
    try:
        return compare.compare_runs(db, first.run_id, second.run_id)
    finally:
        db.close()


def table_rows(output: str, names: tuple[str, ...]) -> list[str]:
    return [name for line in output.splitlines() for name in names if re.match(rf"\s*{name}\s", line)]


def test_run_summary_fits_and_keeps_pilot_order(runs: Any, screen: Console) -> None:
    _, result, _ = runs
    tasks, models = list(TASKS), [MODEL]
    console.show_summary(result.summary, str(result.run_dir), tasks, models)
    output = printed(screen)
    words = cell_words(console.summary_table(result.summary, tasks, models))
    words += cell_words(console.modes_table(result.summary, models))
    assert_fits(output, screen.width, words)
    assert table_rows(output, TASKS) == [t for t in TASKS for _ in ("single", "mixed")]
    assert MODEL in output and result.run_id in output
    # mixed lost half of 12 items: a drop of 50 points; Newcombe's paired interval is 15.4 to 74.6
    assert "+50" in output.split() and "[+15,+75]" in output.split()


def test_two_long_named_models_and_a_long_task_fit(long_runs: Any, screen: Console) -> None:
    pilot, result, _ = long_runs
    tasks, models = list(LONG_TASKS), [m.name for m in pilot.spec.models]
    console.show_summary(result.summary, str(result.run_dir), tasks, models)
    output = printed(screen)
    words = [w for m in models for w in cell_words(console.summary_table(result.summary, tasks, models, model=m))]
    words += [w for m in models for w in cell_words(console.modes_table(result.summary, models, model=m))]
    assert_fits(output, screen.width, words)
    assert "[+15,+75]" in output.split() and all(m in output for m in models)
    first = [output.index(m) for m in models]
    assert first == sorted(first)  # the pilot's order


def test_compare_of_two_long_named_models_fits(long_runs: Any, screen: Console) -> None:
    pilot, _, _ = long_runs
    result = comparison(long_runs)
    console.show_comparison(result)
    models = [m.name for m in pilot.spec.models]
    words = [w for m in models for w in cell_words(console.comparison_table(result, model=m))]
    assert_fits(printed(screen), screen.width, words)


def test_cached_run_explains_its_missing_latency(runs: Any, screen: Console) -> None:
    _, _, cached = runs
    console.show_summary(cached.summary, str(cached.run_dir), list(TASKS), [MODEL])
    output = " ".join(printed(screen).split())
    assert "answered from the response cache" in output and "--fresh" in output


def test_history_fits_with_whole_run_ids(runs: Any, screen: Console) -> None:
    _, first, second = runs
    rows = history_rows(runs)
    console.show_history(rows)
    assert_fits(printed(screen), screen.width, cell_words(console.history_table(rows)))
    assert [r.run_id for r in rows] == [second.run_id, first.run_id]
    assert rows[0].cost_usd == 0 and rows[1].cost_usd is not None and rows[1].cost_usd > 0  # cache: no new spend


def test_history_of_two_pilots_fits_as_a_table_each(runs: Any, screen: Console) -> None:
    rows = history_rows(runs)
    other = [dataclasses.replace(r, pilot="superposition-demo-long", run_id=r.run_id[:-1] + "x") for r in rows]
    console.show_history(rows + other)
    output = printed(screen)
    words = cell_words(console.history_table(rows)) + cell_words(console.history_table(other))
    assert_fits(output, screen.width, words)
    if screen.width < 100:  # together they need about 90 columns
        assert output.count("runs, newest first") == 2 and "superposition-demo-long · runs" in output


def test_compare_fits_in_pilot_order(runs: Any, screen: Console) -> None:
    result = comparison(runs)
    console.show_comparison(result)
    output = printed(screen)
    assert_fits(output, screen.width, cell_words(console.comparison_table(result)))
    assert [c.task for c in result.cells] == [t for t in TASKS for _ in ("single", "mixed")]
    assert len(output.splitlines()) <= 30  # six rows, not a screenful per row


def test_plan_fits(runs: Any, screen: Console) -> None:
    pilot, first, _ = runs
    planned = plan_pilot(pilot, None, first.db_path)
    console.show_plan(planned)
    assert_fits(printed(screen), screen.width, cell_words(console.plan_table(planned)))


def test_wide_tables_print_whole_at_any_width(runs: Any, screen: Console) -> None:
    rows = history_rows(runs)
    console.show_history(rows, wide=True)
    output = printed(screen)
    assert "…" not in output
    for word in cell_words(console.history_table(rows, wide=True)):
        assert re.search(rf"(?<!\S){re.escape(word)}(?!\S)", output), word


def test_wide_adds_columns(runs: Any) -> None:
    _, result, _ = runs
    narrow = [c.header for c in console.summary_table(result.summary).columns]
    wide = [c.header for c in console.summary_table(result.summary, wide=True).columns]
    assert set(narrow) < set(wide) and "p50 s" in wide and "swaps" in wide


def test_help_shows_no_bool_type() -> None:
    for args in (["--help"], ["run", "--help"], ["history", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
        assert result.exit_code == 0
        assert "<bool>" not in result.output
    assert "--wide" in CliRunner().invoke(app, ["run", "--help"]).output


def test_installed_history_at_80_columns(runs: Any) -> None:
    _, first, second = runs
    env = {**os.environ, "COLUMNS": "80"}
    out = str(first.db_path.parent)
    shown = subprocess.run(
        [sys.executable, "-m", "roi", "history", "--out", out], env=env, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert_fits(shown.stdout, 80, [first.run_id, second.run_id, "reused)", "n=36"])


def test_swaps_left_out_of_the_narrow_table_are_named(tmp_path: Path, screen: Console) -> None:
    def swapped(query: Query, call: PromptCall) -> str | None:
        """In mixed calls every query gets the next query's expected answer."""
        others = [q.item.output for q in call.queries]
        return others[(call.queries.index(query) + 1) % len(others)]

    pilot = console_pilot(tmp_path)
    fake = FakeBackend(pilot.spec.models[0], pilot, swapped)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", backends={MODEL: fake}))
    console.show_summary(result.summary, str(result.run_dir), list(TASKS), [MODEL])
    output = " ".join(printed(screen).split())
    assert "swaps: 36 answers were another query's expected answer" in output and "--wide" in output
    one = [replace(c, swaps=wilson(int(c == result.summary.cells[-1]), c.swaps.n)) for c in result.summary.cells]
    (note,) = [n for n in console.latency_notes(replace(result.summary, cells=one)) if n.startswith("swaps")]
    assert note.startswith("swaps: 1 answer was another query's")
