"""The SQLite store: migrations apply once, calls and their items are written atomically."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from roi import store


def call_row(call_id: str = "m/single:t:1") -> store.CallRow:
    return store.CallRow(call_id, "m", "single", "prompt", " out", 10, None, 2, 0.5, 0.0, 0, None, 1, None, "now")


def item_row(call_id: str = "m/single:t:1", item_id: str = "1") -> store.ItemRow:
    return store.ItemRow(call_id, "m", "single", "t", item_id, 1, "in", "gold", "out", True, False, None, None)


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
    names = [r[0] for r in db.execute("SELECT name FROM _roi_migrations ORDER BY rowid")]
    assert names == [name for name, _ in store.MIGRATIONS]
    db.close()
    again = store.connect(path)
    assert [r[0] for r in again.execute("SELECT name FROM _roi_migrations ORDER BY rowid")] == names
    assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


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
    failed = store.CallRow("b", "m", "single", "p", None, None, None, None, 1.0, 2.0, 3, None, 1, "timeout", "now")
    store.record_call(db, "r1", failed, [])
    assert store.finished_call_ids(db, "r1") == {"a"}
    frame = store.calls_frame(db, "r1")
    assert frame.set_index("call_id").loc["b", "error"] == "timeout"
    assert frame.set_index("call_id").loc["b", "backoff_s"] == 2.0
