"""What roi writes is owner-only and written atomically. CI runs as root, which reads any file whatever
its mode, so these tests check the modes themselves."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from roi.events import EventLog
from roi.files import make_private, private_dir, write_atomic
from roi.pilot import load_pilot
from roi.runner import RunOptions, run_pilot

from .conftest import PILOTS
from .fakes import FakeBackend


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> object:
    old = os.umask(0o022)  # the usual default, under which files would be world-readable
    yield None
    os.umask(old)


def test_write_atomic_is_owner_only_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "summary.json"
    write_atomic(target, "first")
    assert target.read_text() == "first" and mode(target) == 0o600
    assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "deeper") == 0o700
    target.chmod(0o644)
    write_atomic(target, b"second")  # replaces the file: the new one is 0600 whatever the old one was
    assert target.read_bytes() == b"second" and mode(target) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["summary.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    write_atomic(target, "old")

    class Boom(str):
        def encode(self, *args: object, **kwargs: object) -> bytes:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, Boom("new"))
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_existing_folders_are_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    private_dir(shared / "mine")
    assert mode(shared) == 0o755 and mode(shared / "mine") == 0o700


def test_make_private_tightens_an_old_store(tmp_path: Path) -> None:
    old = tmp_path / "roi.db"
    old.write_text("")
    old.chmod(0o644)
    make_private(old)
    assert mode(old) == 0o600


def test_everything_a_run_writes_is_owner_only(tmp_path: Path) -> None:
    demo = load_pilot(PILOTS / "superposition-demo.yaml")
    out = tmp_path / "reports"
    with EventLog(tmp_path / "logs" / "events.jsonl") as log:
        backend = FakeBackend(demo.spec.models[0], demo)
        run_pilot(demo, RunOptions(out_dir=out, limit=2, backends={"gemma-270m": backend}, emit=log.emit))
    written = [p for p in (tmp_path / "reports").rglob("*")] + [tmp_path / "logs", tmp_path / "logs" / "events.jsonl"]
    files = {p.name for p in written if p.is_file()}
    assert {"roi.db", "superposition-demo.lock", "items.csv", "calls.csv", "summary.json"} <= files
    assert {"report.html", "report.json", "events.jsonl"} <= files
    for path in [out, *written]:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert not [p for p in written if p.name.endswith(".tmp")]


def test_the_store_and_its_journal_files_are_owner_only(tmp_path: Path) -> None:
    from roi import store

    old = tmp_path / "old" / "roi.db"
    old.parent.mkdir()
    old.touch(mode=0o644)
    old.chmod(0o644)  # as a store made before roi wrote owner-only
    for path in (tmp_path / "new" / "roi.db", old):
        db = store.connect(path)
        try:
            with store.transaction(db):
                db.execute("CREATE TABLE IF NOT EXISTS t (x)")
                db.execute("INSERT INTO t VALUES (1)")
            companions = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
            assert all(p.exists() for p in companions)  # SQLite keeps them while the store is open
            assert [mode(p) for p in (path, *companions)] == [0o600] * 3, path
        finally:
            db.close()
    assert mode(tmp_path / "new") == 0o700
