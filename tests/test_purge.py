"""`roi purge`: runs before a date, a whole pilot, cached answers; baselines kept unless asked; the text
gone from the store's files, not only from its tables; a running pilot is not purged."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roi import baseline, locking, store
from roi.cli import app
from roi.pilot import LoadedPilot, load_pilot
from roi.purge import parse_before, purge
from roi.runner import RunOptions, RunResult, run_pilot

from .conftest import PILOTS
from .fakes import FakeBackend

OLD = "2025-01-15T08:00:00+00:00"


@pytest.fixture
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


def run(demo: LoadedPilot, out: Path, *, fresh: bool = True) -> tuple[RunResult, FakeBackend]:
    backend = FakeBackend(demo.spec.models[0], demo)
    result = run_pilot(demo, RunOptions(out_dir=out, limit=2, fresh=fresh, backends={"gemma-270m": backend}))
    return result, backend


def age(out: Path, run_id: str, when: str = OLD) -> None:
    """Make a stored run look as if it ran at `when` (started and its calls finished then)."""
    db = sqlite3.connect(out / store.DB_NAME)
    with db:
        db.execute("UPDATE runs SET started_at = ? WHERE run_id = ?", (when, run_id))
        db.execute("UPDATE calls SET finished_at = ? WHERE run_id = ?", (when, run_id))
    db.close()


def counts(out: Path, run_id: str) -> tuple[int, int, int]:
    db = sqlite3.connect(out / store.DB_NAME)
    found = tuple(
        db.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
        for table in ("runs", "calls", "items")
    )
    db.close()
    return found  # type: ignore[return-value]


def store_bytes(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in out.glob(store.DB_NAME + "*"))


def test_parse_before() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_before("2026-01-31", now) == "2026-01-31T00:00:00+00:00"
    assert parse_before("2026-01-31T09:30+09:00", now) == "2026-01-31T00:30:00+00:00"
    assert parse_before("90d", now) == "2026-09-01T12:00:00+00:00"
    with pytest.raises(Exception, match="not a date"):
        parse_before("last week", now)


def test_runs_before_a_date_are_removed_with_their_folders(demo: LoadedPilot, tmp_path: Path) -> None:
    old, _ = run(demo, tmp_path)
    new, _ = run(demo, tmp_path)
    age(tmp_path, old.run_id)
    result = purge(tmp_path, before=parse_before("2026-01-01"))
    assert [r.run_id for r in result.runs] == [old.run_id]
    assert result.removed.runs == 1 and result.removed.calls == 10 and result.removed.items == 16
    assert counts(tmp_path, old.run_id) == (0, 0, 0) and not old.run_dir.exists()
    assert counts(tmp_path, new.run_id) == (1, 10, 16) and (new.run_dir / "report.html").is_file()


def test_the_accepted_baseline_is_kept_unless_asked(demo: LoadedPilot, tmp_path: Path) -> None:
    old, _ = run(demo, tmp_path)
    db = store.connect(tmp_path / store.DB_NAME)
    baseline.accept(db, old.run_id)
    db.close()
    age(tmp_path, old.run_id)
    kept = purge(tmp_path, before=parse_before("2026-01-01"))
    assert kept.runs == [] and kept.kept_baselines == [old.run_id] and counts(tmp_path, old.run_id)[0] == 1
    gone = purge(tmp_path, before=parse_before("2026-01-01"), include_baselines=True)
    assert gone.removed.runs == 1 and gone.removed.baselines == 1 and counts(tmp_path, old.run_id) == (0, 0, 0)


def test_a_whole_pilot_leaves_none_of_its_text_in_the_store_files(demo: LoadedPilot, tmp_path: Path) -> None:
    first, _ = run(demo, tmp_path)
    run(demo, tmp_path)
    eval_input = first.evaluation.items["input"].iloc[0].encode()
    assert eval_input in store_bytes(tmp_path)
    result = purge(tmp_path, pilot=demo.name)
    assert result.removed.runs == 2 and result.folders == 2
    assert not (tmp_path / demo.name).exists()
    assert eval_input not in store_bytes(tmp_path)  # VACUUM and an emptied WAL, not just deleted rows
    assert result.bytes_after < result.bytes_before


def test_cached_answers_before_a_date_are_not_reused(demo: LoadedPilot, tmp_path: Path) -> None:
    old, _ = run(demo, tmp_path)
    age(tmp_path, old.run_id)
    result = purge(tmp_path, cache_before=parse_before("2026-01-01"))
    assert result.cache_sources_forgotten == 10 and result.runs == [] and counts(tmp_path, old.run_id)[0] == 1
    _, backend = run(demo, tmp_path, fresh=False)
    assert len(backend.seen) == 10  # every call went to the model again


def test_a_running_pilot_is_not_purged(demo: LoadedPilot, tmp_path: Path) -> None:
    old, _ = run(demo, tmp_path)
    with locking.PilotLock(tmp_path, demo.name), pytest.raises(locking.LockBusy, match="Nothing was purged"):
        purge(tmp_path, pilot=demo.name)
    assert counts(tmp_path, old.run_id)[0] == 1


def test_cli_dry_run_then_purge(demo: LoadedPilot, tmp_path: Path) -> None:
    old, _ = run(demo, tmp_path)
    age(tmp_path, old.run_id)
    runner = CliRunner()
    dry = runner.invoke(app, ["purge", "--before", "90d", "--out", str(tmp_path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would remove 1 run(s) of superposition-demo" in dry.output and old.run_id in dry.output
    assert counts(tmp_path, old.run_id)[0] == 1
    done = runner.invoke(app, ["purge", "--before", "90d", "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "Removed 1 run(s)" in done.output and "Store compacted" in done.output
    assert counts(tmp_path, old.run_id) == (0, 0, 0)
