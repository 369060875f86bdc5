"""The SQLite store: migrations apply once, calls and their items are written atomically."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from roi import store
from roi.evaluation import evaluate_run
from roi.runner import rebuild_report

DATA = Path(__file__).parent / "data"


def call_row(call_id: str = "m/single:t:1") -> store.CallRow:
    return store.CallRow(
        call_id=call_id, model="m", mode="single", prompt="prompt", raw_output=" out", prompt_tokens=10,
        cached_prompt_tokens=None, output_tokens=2, latency_s=0.5, backoff_s=0.0, retries=0, cost_usd=None,
        n_items=1, error=None, finished_at="now",
    )  # fmt: skip


def item_row(call_id: str = "m/single:t:1", item_id: str = "1") -> store.ItemRow:
    return store.ItemRow(
        call_id=call_id, model="m", mode="single", task="t", item_id=item_id, position=1, input="in", gold="gold",
        answer="out", parsed=True, correct=False, swap_with=None, other_task_space=None,
    )  # fmt: skip


def new_run(db: sqlite3.Connection, run_id: str = "r1") -> None:
    store.insert_run(
        db,
        run_id=run_id,
        pilot="p",
        pilot_path="p.yaml",
        pilot_sha256="0" * 64,
        pilot_json="{}",
        started_at="now",
        item_limit=None,
        environment={"python": "3"},
    )


def test_migrations_apply_once_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "roi.db"
    db = store.connect(path)
    names = store.applied_migrations(db)
    assert names == [m.name for m in store.MIGRATIONS]
    db.close()
    again = store.connect(path)
    assert store.applied_migrations(again) == names
    assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migration_names_are_unique_old_and_new() -> None:
    every = [n for m in store.MIGRATIONS for n in (m.name, *m.recorded_as)]
    assert len(every) == len(set(every))


def test_a_store_of_the_earlier_schema_opens_reads_and_upgrades(tmp_path: Path) -> None:
    """tests/data/old_store.sql: a store written by roi before the migrations were renamed (two fake runs
    of the probe pilot, the first accepted as baseline, the second with a failed call and probe rows)."""
    path = tmp_path / "roi.db"
    old = sqlite3.connect(path)
    old.executescript((DATA / "old_store.sql").read_text(encoding="utf-8"))
    old.close()
    db = store.connect(path)
    recorded = store.applied_migrations(db)
    assert recorded[:5] == ["m001_initial", "m0701_call_cache", "m0702_baselines", "m0501_probe", "m0502_probe_method"]
    assert recorded[5:] == [m.name for m in store.MIGRATIONS[5:]]  # the later ones applied, under their names
    first, second = (r["run_id"] for r in reversed(store.runs_of(db, "superposition-probe")))
    assert store.current_baseline(db, "superposition-probe") == first
    evaluation = evaluate_run(db, second)
    assert evaluation.run["status"] == "complete_with_failures" and evaluation.summary.cells
    assert evaluation.check.reference == first and evaluation.check.reference_is_baseline
    assert [f.mixture for f in evaluation.probe][:1] == ["number_en 1.00"] and not evaluation.probe[0].estimate
    assert [r.run_id for r in evaluation.history] == [second, first] and evaluation.history[1].baseline
    db.close()
    files = rebuild_report(tmp_path, second)
    ids = [s["id"] for s in json.loads(files.json.read_text())["sections"]]
    assert "probe" in ids and "trend" in ids
    again = store.connect(path)
    assert store.applied_migrations(again) == recorded  # nothing applied twice


def test_call_and_items_are_atomic(tmp_path: Path) -> None:
    db = store.connect(tmp_path / "roi.db")
    new_run(db)
    store.record_call(db, "r1", call_row(), [item_row()])
    with pytest.raises(sqlite3.IntegrityError):
        store.record_call(db, "r1", call_row("m/single:t:2"), [item_row("m/single:t:2", "2"), item_row("m/nope", "3")])
    assert tuple(db.execute("SELECT count(*) FROM calls").fetchone()) == (1,)
    assert [tuple(r) for r in db.execute("SELECT call_id FROM items")] == [("m/single:t:1",)]


def test_finished_calls_exclude_errors(tmp_path: Path) -> None:
    db = store.connect(tmp_path / "roi.db")
    new_run(db)
    store.record_call(db, "r1", call_row("a"), [])
    failed = dataclasses.replace(
        call_row("b"),
        raw_output=None,
        prompt_tokens=None,
        output_tokens=None,
        latency_s=1.0,
        backoff_s=2.0,
        retries=3,
        error="timeout",
    )
    store.record_call(db, "r1", failed, [])
    assert store.finished_call_ids(db, "r1") == {"a"}
    frame = store.calls_frame(db, "r1")
    assert frame.set_index("call_id").loc["b", "error"] == "timeout"
    assert frame.set_index("call_id").loc["b", "backoff_s"] == 2.0
