"""`roi plan` (estimates without calling a model) and `roi run --max-cost` (the spending limit)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roi.cli import app
from roi.errors import ExitCode, RoiError
from roi.pilot import LoadedPilot, ModelSpec, Price, load_pilot
from roi.planning import approx_tokens, ideal_output, plan_pilot
from roi.prompts import build_calls, parse_answers
from roi.runner import RunOptions, run_pilot

from .conftest import PILOTS
from .fakes import FakeBackend

PRICE = Price(input_per_1m=2.0, output_per_1m=8.0)


@pytest.fixture
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


def api_only(pilot: LoadedPilot, **settings: object) -> LoadedPilot:
    spec = ModelSpec(name="api", backend="openai", model="m", base_url="http://127.0.0.1:9/v1", **settings)  # type: ignore[arg-type]
    return LoadedPilot(pilot.spec.model_copy(update={"models": [spec]}), pilot.path, pilot.sha256, pilot.tasks)


def test_ideal_output_parses_to_the_expected_answers(demo: LoadedPilot) -> None:
    for call in build_calls(demo, 3):
        assert parse_answers(call, ideal_output(call)) == [q.item.output for q in call.queries]
    single = build_calls(demo, 1)[0]
    assert ideal_output(single) == " Athens\n"


def test_plan_counts_calls_tokens_and_cost(demo: LoadedPilot) -> None:
    pilot = api_only(demo, price=PRICE, max_concurrency=4)
    plan = plan_pilot(pilot, limit=5)
    rows = {r.mode: r for r in plan.rows}
    calls = build_calls(pilot, 5)
    single = [c for c in calls if c.mode == "single"]
    assert (rows["single"].calls, rows["single"].items) == (20, 20)
    assert (rows["mixed"].calls, rows["mixed"].items) == (5, 20)
    assert rows["single"].counted_by == "approx. 4 chars/token"
    assert rows["single"].prompt_tokens == sum(approx_tokens(c.prompt) for c in single)
    assert rows["single"].output_tokens == sum(approx_tokens(ideal_output(c)) for c in single)
    assert rows["single"].max_output_tokens == sum(c.max_new_tokens for c in single)
    expected = (rows["single"].prompt_tokens * 2.0 + rows["single"].output_tokens * 8.0) / 1e6
    assert rows["single"].cost_usd == pytest.approx(expected)
    assert rows["single"].max_cost_usd is not None and rows["single"].max_cost_usd > expected
    assert rows["single"].time_s is None and "unknown" in rows["single"].time_basis


def test_plan_without_price_or_history_says_unknown(demo: LoadedPilot, tmp_path: Path) -> None:
    plan = plan_pilot(api_only(demo), limit=2, history=tmp_path / "roi.db")
    assert all(r.cost_usd is None and r.max_cost_usd is None and r.time_s is None for r in plan.rows)
    assert not (tmp_path / "roi.db").exists()  # planning writes nothing


def test_plan_takes_time_from_earlier_runs(demo: LoadedPilot, tmp_path: Path) -> None:
    pilot = api_only(demo, price=PRICE, max_concurrency=2)
    run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=2, backends={"api": FakeBackend(pilot.spec.models[0], pilot)}))
    rows = {r.mode: r for r in plan_pilot(pilot, limit=10, history=tmp_path / "roi.db").rows}
    # the fake takes 0.1 s per query: single calls 0.1 s, mixed calls (4 queries) 0.4 s; 2 in flight
    assert rows["single"].time_s == pytest.approx(0.1 * 40 / 2)
    assert rows["mixed"].time_s == pytest.approx(0.4 * 10 / 2)
    assert rows["single"].time_basis == "mean of 8 earlier calls, 2 in flight"


def test_local_model_counts_with_its_tokenizer(demo: LoadedPilot, embedded_model_dir: Path) -> None:
    from tokenizers import Tokenizer

    plan = plan_pilot(demo, limit=2)
    assert {r.counted_by for r in plan.rows} == {"its tokenizer"}
    tokenizer = Tokenizer.from_file(str(embedded_model_dir / "tokenizer.json"))
    single = [c for c in build_calls(demo, 2) if c.mode == "single"]
    assert plan.rows[0].prompt_tokens == sum(len(tokenizer.encode(c.prompt).ids) for c in single)
    assert plan.rows[0].cost_usd is None  # local cost is machine time: unknown before a run


def test_plan_command(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(app, ["plan", str(PILOTS / "superposition-demo.yaml"), "--limit", "3",
                                       "--out", str(tmp_path)])  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    assert "no model called" in outcome.output and "gemma-270m" in outcome.output
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- --max-cost


def stored(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "roi.db")


def test_max_cost_stops_before_the_limit_and_resume_continues(demo: LoadedPilot, tmp_path: Path) -> None:
    pilot = api_only(demo, price=PRICE, max_concurrency=2)
    spec = pilot.spec.models[0]
    # the fake reports len(prompt)//4 prompt tokens and 3 output tokens per call
    per_call = [(len(c.prompt) // 4 * 2.0 + 3 * 8.0) / 1e6 for c in build_calls(pilot, 3)]
    limit = sum(per_call) / 2
    first = run_pilot(
        pilot, RunOptions(out_dir=tmp_path, limit=3, max_cost_usd=limit, backends={"api": FakeBackend(spec, pilot)})
    )
    db = stored(tmp_path)
    (spent, n) = db.execute("SELECT SUM(cost_usd), COUNT(*) FROM calls").fetchone()
    assert spent <= limit and 0 < n < len(per_call)
    assert first.stopped is not None and f"{len(per_call) - n} calls not sent" in first.stopped
    assert db.execute("SELECT status FROM runs").fetchone() == ("stopped_max_cost",)
    assert first.exit_code == ExitCode.INCOMPLETE  # fewer items than asked: exit 4, never a "regression"
    assert first.incomplete == [first.stopped]
    assert json.loads((first.run_dir / "summary.json").read_text())["stopped"] == first.stopped
    assert json.loads((first.run_dir / "report.json").read_text())["run"]["status"] == "stopped_max_cost"
    again = FakeBackend(spec, pilot)
    second = run_pilot(
        pilot,
        RunOptions(out_dir=tmp_path, limit=3, resume=first.run_id, max_cost_usd=1.0, backends={"api": again}),
    )
    assert second.stopped is None and len(again.seen) == len(per_call) - n and second.exit_code == ExitCode.OK
    assert db.execute("SELECT COUNT(*), SUM(cost_usd) FROM calls").fetchone() == (
        len(per_call), pytest.approx(sum(per_call)))  # fmt: skip


def test_max_cost_needs_prices(demo: LoadedPilot, tmp_path: Path) -> None:
    pilot = api_only(demo)
    with pytest.raises(RoiError, match="no price for: api"):
        run_pilot(
            pilot,
            RunOptions(out_dir=tmp_path, max_cost_usd=1.0, backends={"api": FakeBackend(pilot.spec.models[0], pilot)}),
        )
    assert not (tmp_path / "roi.db").exists()


def test_max_cost_on_a_local_model_passes_by_at_most_one_call(demo: LoadedPilot, tmp_path: Path) -> None:
    spec = demo.spec.models[0]  # 0.40 USD/hour; the fake takes 0.1 s per query
    limit = 0.1 * 0.40 / 3600 * 5.5
    run = run_pilot(
        demo, RunOptions(out_dir=tmp_path, limit=3, max_cost_usd=limit, backends={spec.name: FakeBackend(spec, demo)})
    )
    (spent, n) = stored(tmp_path).execute("SELECT SUM(cost_usd), COUNT(*) FROM calls").fetchone()
    assert run.stopped is not None and n == 5 and spent <= limit
