"""`roi purge`: remove stored customer text that is no longer needed.

The store keeps every prompt, raw output and eval input of every run, and the response cache is
those same calls, so text stays until it is purged. Three scopes:

- runs started before a date (of one pilot, or of all): their rows in every table and their run
  folders (items.csv, calls.csv, summary.json, report.html, report.json, and batch job files). Each pilot's accepted
  baseline is kept unless `include_baselines` is set (later runs are compared with it);
- a whole pilot: every run, every acceptance, the pilot's folder of runs;
- cached answers before a date: calls made before it stop answering later calls from the cache
  (their runs stay; purge the runs to remove their text).

The store is then compacted (VACUUM, WAL emptied), so the deleted text is gone from the files too.
Each affected pilot's lock is held for the purge: a pilot that is running is not purged (exit 1).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from roi import store
from roi.errors import Problem, RoiError
from roi.locking import PilotLock

DAYS = re.compile(r"^(\d{1,5})d$")


@dataclass(frozen=True)
class PurgeResult:
    runs: list[store.RunRef]  # removed (or, in a dry run, to be removed)
    removed: store.Removed
    folders: int  # run folders deleted
    kept_baselines: list[str] = field(default_factory=list)
    cache_sources_forgotten: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    dry_run: bool = False


def parse_before(value: str, now: datetime | None = None) -> str:
    """`2026-01-31`, an ISO date-time (UTC unless it says otherwise) or `90d` (days before now), as the
    ISO UTC time the store's timestamps are compared with."""
    moment = now or datetime.now(UTC)
    days = DAYS.match(value.strip())
    try:
        when = moment - timedelta(days=int(days.group(1))) if days else datetime.fromisoformat(value.strip())
    except ValueError:
        raise RoiError(
            [Problem(f"{value!r} is not a date: use 2026-01-31, 2026-01-31T12:00 or 90d", field="--before")]
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


def purge(
    out_dir: Path,
    *,
    before: str | None = None,
    pilot: str | None = None,
    cache_before: str | None = None,
    include_baselines: bool = False,
    dry_run: bool = False,
) -> PurgeResult:
    """Purge the store in `out_dir` (see the module docstring). `before`/`cache_before` are ISO UTC
    times (`parse_before`); `pilot` alone purges the whole pilot."""
    if before is None and cache_before is None and pilot is None:
        raise RoiError([Problem("say what to purge: --before DATE, --cache-before DATE or --pilot NAME")])
    db_path = out_dir / store.DB_NAME
    db = store.open_existing(out_dir)
    try:
        whole_pilot = pilot is not None and before is None and cache_before is None
        runs = store.runs_started_before(db, before, pilot) if before is not None or whole_pilot else []
        kept = [] if include_baselines or whole_pilot else _kept_baselines(db, runs)
        runs = [r for r in runs if r.run_id not in kept]
        size_before = _store_bytes(db_path)
        if dry_run:
            return PurgeResult(runs, store.Removed(), 0, kept, 0, size_before, size_before, dry_run=True)
        with _locked({r.pilot for r in runs} | ({pilot} if pilot else set()), out_dir):
            removed = store.delete_runs(db, [r.run_id for r in runs])
            forgotten = store.forget_response_cache(db, cache_before, pilot) if cache_before is not None else 0
            folders = sum(_remove_run_folder(out_dir, r) for r in runs)
            store.compact(db)
        return PurgeResult(runs, removed, folders, kept, forgotten, size_before, _store_bytes(db_path))
    finally:
        db.close()


def _kept_baselines(db: sqlite3.Connection, runs: list[store.RunRef]) -> list[str]:
    baselines = set(store.latest_baselines(db).values())
    return [r.run_id for r in runs if r.run_id in baselines]


@contextlib.contextmanager
def _locked(pilots: set[str], out_dir: Path) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for name in sorted(pilots):
            stack.enter_context(PilotLock(out_dir, name, refused="Nothing was purged; try again when it has ended."))
        yield


def _remove_run_folder(out_dir: Path, run: store.RunRef) -> bool:
    """Delete OUT/<pilot>/<run_id> and the run's batch files if they are real folders inside OUT
    (never through a symlink)."""
    removed = False
    for folder in (out_dir / run.pilot / run.run_id, store.batch_folder(out_dir, run.run_id)):
        if folder.is_symlink() or not folder.is_dir() or out_dir.resolve() not in folder.resolve().parents:
            continue
        shutil.rmtree(folder)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the pilot's (or batches') folder, once its last run is gone
        removed = True
    return removed


def _store_bytes(db_path: Path) -> int:
    files = [db_path, *(db_path.with_name(db_path.name + s) for s in store.STORE_COMPANIONS)]
    return sum(p.stat().st_size for p in files if p.exists())
