"""The run store: SQLite (WAL), one transaction per finished call, schema changes as migrations. Every
SQL statement of roi lives in this module; other modules call its named functions.

Tables (docs/store.md): `runs` (one row per run), `calls` (every model call: prompt, raw output,
tokens, latency, cost, error), `items` (every scored eval item of every call), `baselines` (accepted
runs) and `probe` (the superposition probe's rows).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from roi.backends import BatchRecord
from roi.errors import Problem, RoiError
from roi.files import PRIVATE_FILE, make_private, private_dir

DB_NAME = "roi.db"  # the store's file in the folder given to roi run --out
STORE_COMPANIONS = ("-wal", "-shm", "-journal")  # files SQLite keeps beside the store
COMPLETE = ("complete", "complete_with_failures")  # runs.status of a run whose every call was sent
UNFINISHED = ("running", "interrupted", "failed")  # runs.status of a run a plain re-run resumes


# ---------------------------------------------------------------- schema


@dataclass(frozen=True)
class Migration:
    """One schema change, applied once in list order inside a transaction and recorded by name."""

    name: str
    sql: str
    recorded_as: tuple[str, ...] = ()  # names older stores recorded it under (never applied twice)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "create_runs_calls_items",
        """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        pilot TEXT NOT NULL,
        pilot_path TEXT NOT NULL,
        pilot_sha256 TEXT NOT NULL,
        pilot_json TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,          -- UNFINISHED, COMPLETE or a stop (stopped_max_cost, ...)
        item_limit INTEGER,
        environment_json TEXT NOT NULL DEFAULT '{}',
        summary_json TEXT
    );
    CREATE TABLE calls (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        call_id TEXT NOT NULL,         -- model/mode/... : stable across runs of one pilot
        model TEXT NOT NULL,
        mode TEXT NOT NULL,
        prompt TEXT NOT NULL,
        raw_output TEXT,
        prompt_tokens INTEGER,
        cached_prompt_tokens INTEGER,
        output_tokens INTEGER,
        latency_s REAL NOT NULL,
        backoff_s REAL NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL,                 -- NULL: unknown, never 0 for unknown
        n_items INTEGER NOT NULL,
        error TEXT,
        finished_at TEXT NOT NULL,
        PRIMARY KEY (run_id, call_id)
    );
    CREATE TABLE items (
        run_id TEXT NOT NULL,
        call_id TEXT NOT NULL,
        model TEXT NOT NULL,
        mode TEXT NOT NULL,
        task TEXT NOT NULL,
        item_id TEXT NOT NULL,
        position INTEGER NOT NULL,     -- the query's place in its call (1-based)
        input TEXT NOT NULL,
        gold TEXT NOT NULL,
        answer TEXT,                   -- parsed answer; NULL when unparseable or the call failed
        parsed INTEGER NOT NULL,
        correct INTEGER NOT NULL,
        swap_with TEXT,                -- task whose query's gold answer this query got (same call)
        other_task_space TEXT,         -- task whose answer space the answer falls in, if not its own
        PRIMARY KEY (run_id, model, mode, task, item_id),
        FOREIGN KEY (run_id, call_id) REFERENCES calls(run_id, call_id)
    );
    CREATE INDEX items_by_call ON items(run_id, call_id);
    """,
        recorded_as=("m001_initial",),
    ),
    # The response cache: `cache_key` addresses a call's model, parameters and prompt; `cached` (later
    # `reused`) marks a call answered from an earlier one (its latency is not a live measurement).
    Migration(
        "add_response_cache_columns",
        """
    ALTER TABLE calls ADD COLUMN cache_key TEXT;
    ALTER TABLE calls ADD COLUMN cached INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX calls_by_cache_key ON calls(cache_key) WHERE cache_key IS NOT NULL AND cached = 0;
    """,
        recorded_as=("m0701_call_cache",),
    ),
    # Accepted baselines (the latest row of a pilot is its baseline) and each run's decision in brief,
    # so history and baseline checks need not decide every earlier run again.
    Migration(
        "create_baselines_add_decision_brief",
        """
    CREATE TABLE baselines (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pilot TEXT NOT NULL,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        accepted_at TEXT NOT NULL
    );
    CREATE INDEX baselines_by_pilot ON baselines(pilot, id);
    ALTER TABLE runs ADD COLUMN decision_json TEXT;
    """,
        recorded_as=("m0702_baselines",),
    ),
    # The superposition probe: one row per (model, mixture, prompt, task), P(the task's answer).
    Migration(
        "create_probe",
        """
    CREATE TABLE probe (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        model TEXT NOT NULL,
        mixture TEXT NOT NULL,         -- e.g. 'number_en 0.50 + number_fr 0.50'
        prompt_index INTEGER NOT NULL,
        task TEXT NOT NULL,
        share REAL NOT NULL,           -- the task's share of the prompt's examples (0..1)
        query TEXT NOT NULL,
        answer TEXT NOT NULL,
        logprob REAL NOT NULL,         -- natural log of P(answer | prompt), teacher-forced
        probability REAL NOT NULL,
        answer_tokens INTEGER NOT NULL,
        in_beam INTEGER NOT NULL,      -- the answer is among the model's top beam-search continuations
        prompt_tokens INTEGER NOT NULL,
        PRIMARY KEY (run_id, model, mixture, prompt_index, task)
    );
    """,
        recorded_as=("m0501_probe",),
    ),
    # How each probe row's probability was read, so estimates stay labelled; rows stored before came
    # from local models, read by teacher forcing.
    Migration(
        "add_probe_method",
        """
    ALTER TABLE probe ADD COLUMN method TEXT NOT NULL DEFAULT 'teacher_forcing';  -- or echo, top_logprobs
    ALTER TABLE probe ADD COLUMN upper_bound INTEGER NOT NULL DEFAULT 0;  -- top_logprobs: P is at most this
    """,
        recorded_as=("m0502_probe_method",),
    ),
    # A local call's machine time in its batch (what it is paid by); NULL for API calls.
    Migration("add_call_machine_time", "ALTER TABLE calls ADD COLUMN machine_s REAL;", ("m_machine_time",)),
    # The pilot's settings as the run used them (roi/fingerprint.py) and their fingerprint, so compare and
    # the trend can say when two runs asked differently. NULL for runs stored before.
    Migration(
        "add_run_pilot_settings",
        """
    ALTER TABLE runs ADD COLUMN pilot_fingerprint TEXT;
    ALTER TABLE runs ADD COLUMN pilot_settings_json TEXT;
    """,
        recorded_as=("m_pilot_settings",),
    ),
    # Batch jobs (roi/backends/batch.py): one row per job a run submitted or began to submit, so a killed
    # run polls its job again instead of paying for a second one.
    Migration(
        "create_batch_jobs",
        """
    CREATE TABLE batch_jobs (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        model TEXT NOT NULL,
        keys_json TEXT NOT NULL,       -- the call keys (custom_id) of its input file
        input_sha256 TEXT NOT NULL,
        input_ref TEXT NOT NULL,       -- the uploaded file's id (or the input path for a runner here)
        batch_id TEXT,                 -- NULL: uploaded, job not created (or not yet known)
        uploaded_at TEXT NOT NULL,
        submitted_at TEXT,
        collected_at TEXT              -- results stored; NULL: still to poll
    );
    CREATE INDEX batch_jobs_by_run ON batch_jobs(run_id, model);
    """,
        recorded_as=("m_batch_jobs",),
    ),
    # "cached" meant both the response cache and an API's prompt cache (calls.cached_prompt_tokens): a
    # call answered from the response cache is `reused`. SQLite renames the column in its index too.
    Migration("rename_calls_cached_to_reused", "ALTER TABLE calls RENAME COLUMN cached TO reused;"),
)


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS _roi_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {r[0] for r in db.execute("SELECT name FROM _roi_migrations")}
    for migration in MIGRATIONS:
        if done.isdisjoint((migration.name, *migration.recorded_as)):
            with transaction(db):
                run_script(db, migration.sql)
                db.execute("INSERT INTO _roi_migrations VALUES (?, datetime('now'))", (migration.name,))


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    """Names recorded in the store, in the order they were applied."""
    return [str(r[0]) for r in db.execute("SELECT name FROM _roi_migrations ORDER BY rowid")]


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Run the statements of `script` inside the caller's transaction (executescript would commit)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement: {statement.strip()[:60]}")


@dataclass(frozen=True, kw_only=True)
class CallRow:
    call_id: str
    model: str
    mode: str
    prompt: str
    raw_output: str | None
    prompt_tokens: int | None
    cached_prompt_tokens: int | None
    output_tokens: int | None
    latency_s: float
    backoff_s: float
    retries: int
    cost_usd: float | None
    n_items: int
    error: str | None
    finished_at: str
    cache_key: str | None = None  # the response cache's key (roi/cache.py); None: the call may not be reused
    reused: bool = False  # answered from the response cache: figures are the original call's
    machine_s: float | None = None  # local engines: the call's machine time in its batch


@dataclass(frozen=True, kw_only=True)
class ItemRow:
    call_id: str
    model: str
    mode: str
    task: str
    item_id: str
    position: int
    input: str
    gold: str
    answer: str | None
    parsed: bool
    correct: bool
    swap_with: str | None
    other_task_space: str | None


# ---------------------------------------------------------------- connections


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the store. It holds customer text, so it is owner-only:
    the file is created 0600 before SQLite opens it (SQLite gives its -wal and -shm files the main
    file's mode), in a folder created 0700; a store made by an older, looser version is tightened."""
    _create_private(path)
    db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    _migrate(db)
    for companion in STORE_COMPANIONS:  # left by an older version, before the store itself was 0600
        make_private(path.with_name(path.name + companion))
    return db


def _create_private(path: Path) -> None:
    private_dir(path.parent)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE))
    make_private(path)


def open_existing(out_dir: Path) -> sqlite3.Connection:
    """The store of an earlier `roi run --out out_dir`; a user error when there is none (nothing created)."""
    path = out_dir / DB_NAME
    if not path.is_file():
        raise RoiError([Problem(f"no run store here (looked for {path})", str(out_dir), None, "--out")])
    return connect(path)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _insert(db: sqlite3.Connection, table: str, run_id: str, row: Any) -> None:
    values = asdict(row)
    db.execute(
        f"INSERT OR REPLACE INTO {table} (run_id, {', '.join(values)}) VALUES (?{', ?' * len(values)})",
        (run_id, *values.values()),
    )


# ---------------------------------------------------------------- runs


def insert_run(
    db: sqlite3.Connection,
    *,
    run_id: str,
    pilot: str,
    pilot_path: str,
    pilot_sha256: str,
    pilot_json: str,
    started_at: str,
    item_limit: int | None,
    environment: dict[str, Any],
    settings: dict[str, Any] | None = None,
    fingerprint: str | None = None,
) -> None:
    with transaction(db):
        db.execute(
            "INSERT INTO runs (run_id, pilot, pilot_path, pilot_sha256, pilot_json, started_at, status,"
            " item_limit, environment_json, pilot_settings_json, pilot_fingerprint)"
            " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
            (
                run_id,
                pilot,
                pilot_path,
                pilot_sha256,
                pilot_json,
                started_at,
                item_limit,
                json.dumps(environment, sort_keys=True),
                None if settings is None else json.dumps(settings, sort_keys=True, ensure_ascii=False),
                fingerprint,
            ),
        )


def run_settings(row: sqlite3.Row | dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's stored pilot settings (None when it has none: stored before they were kept)."""
    if row is None or row["pilot_settings_json"] is None:
        return None
    settings: dict[str, Any] = json.loads(row["pilot_settings_json"])
    return settings


def get_run(db: sqlite3.Connection, run_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row


def runs_of(db: sqlite3.Connection, pilot: str | None = None, limit: int | None = None) -> list[sqlite3.Row]:
    """Runs of `pilot` (every pilot when None), newest first, at most `limit`."""
    query = "SELECT * FROM runs" + (" WHERE pilot = ?" if pilot else "") + " ORDER BY rowid DESC"
    params: tuple[Any, ...] = (pilot,) if pilot else ()
    if limit is not None:
        query += " LIMIT ?"
        params += (limit,)
    return db.execute(query, params).fetchall()


def unfinished_run(db: sqlite3.Connection, pilot: str, pilot_sha256: str, item_limit: int | None) -> str | None:
    """The latest run of `pilot` left `running` (killed), `interrupted` (Ctrl-C) or `failed` (e.g. a model
    that could not load), made from the same pilot file and --limit: a plain re-run resumes it
    (roi/locking.py says why that is safe)."""
    statuses = ", ".join("?" * len(UNFINISHED))
    row = db.execute(
        "SELECT run_id FROM runs WHERE pilot = ? AND pilot_sha256 = ? AND item_limit IS ?"
        f" AND status IN ({statuses}) ORDER BY rowid DESC LIMIT 1",
        (pilot, pilot_sha256, item_limit, *UNFINISHED),
    ).fetchone()
    return None if row is None else str(row[0])


def previous_complete_run(db: sqlite3.Connection, run_id: str) -> str | None:
    """The pilot's latest complete run started before `run_id`, with the same --limit."""
    row = db.execute(
        "SELECT p.run_id FROM runs p JOIN runs r ON p.pilot = r.pilot AND p.item_limit IS r.item_limit"
        " WHERE r.run_id = ? AND p.run_id != r.run_id AND p.rowid < r.rowid"
        " AND p.status IN (?, ?) ORDER BY p.rowid DESC LIMIT 1",
        (run_id, *COMPLETE),
    ).fetchone()
    return None if row is None else str(row[0])


def merge_environment(db: sqlite3.Connection, run_id: str, environment: dict[str, Any]) -> None:
    """Add `environment` (library versions, device, host) to what the run recorded before."""
    with transaction(db):
        row = get_run(db, run_id)
        merged = json.loads(row["environment_json"]) if row else {}
        merged.update(environment)
        db.execute("UPDATE runs SET environment_json = ? WHERE run_id = ?", (json.dumps(merged), run_id))


def finish_run(
    db: sqlite3.Connection,
    run_id: str,
    *,
    status: str,
    finished_at: str,
    summary: dict[str, Any] | None,
    decision_brief: dict[str, Any] | None = None,
) -> None:
    """Mark a run ended; a finished run gets its summary and decision in brief in the same transaction."""
    with transaction(db):
        db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, summary_json = ?, decision_json = ? WHERE run_id = ?",
            (status, finished_at, _json_or_null(summary), _json_or_null(decision_brief), run_id),
        )


def record_decision_brief(db: sqlite3.Connection, run_id: str, brief: dict[str, Any]) -> None:
    with transaction(db):
        db.execute("UPDATE runs SET decision_json = ? WHERE run_id = ?", (json.dumps(brief), run_id))


def _json_or_null(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


# ---------------------------------------------------------------- calls and items


def record_call(db: sqlite3.Connection, run_id: str, call: CallRow, items: list[ItemRow]) -> None:
    """Store a finished call and its scored items atomically: both or neither survive a crash."""
    with transaction(db):
        _insert(db, "calls", run_id, call)
        for item in items:
            _insert(db, "items", run_id, item)


def finished_call_ids(db: sqlite3.Connection, run_id: str) -> set[str]:
    """Calls of a run that completed without error (a resume repeats only the others)."""
    rows = db.execute("SELECT call_id FROM calls WHERE run_id = ? AND error IS NULL", (run_id,))
    return {r[0] for r in rows}


def failed_call_count(db: sqlite3.Connection, run_id: str) -> int:
    (failed,) = db.execute("SELECT COUNT(*) FROM calls WHERE run_id = ? AND error IS NOT NULL", (run_id,)).fetchone()
    return int(failed)


@dataclass(frozen=True)
class CallCounts:
    calls: int
    reused: int  # answered from the response cache: no new spend
    spent_usd: float | None  # what the run's own (live) calls cost; None: a live call has no price


def call_counts(db: sqlite3.Connection, run_id: str) -> CallCounts:
    calls, reused, spent, unpriced = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(reused), 0), COALESCE(SUM(cost_usd) FILTER (WHERE reused = 0), 0),"
        " COUNT(*) FILTER (WHERE reused = 0 AND error IS NULL AND cost_usd IS NULL) FROM calls WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    return CallCounts(int(calls), int(reused), None if unpriced else float(spent))


def spent_usd(db: sqlite3.Connection, run_id: str) -> float:
    """What the run's stored calls cost (calls of unknown cost count 0: only priced runs have a budget)."""
    (spent,) = db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE run_id = ?", (run_id,)).fetchone()
    return float(spent)


def response_cache_source(db: sqlite3.Connection, key: str) -> sqlite3.Row | None:
    """The latest live, successful call with this response-cache key (a copy is never a source)."""
    row: sqlite3.Row | None = db.execute(
        "SELECT run_id, call_id, raw_output, prompt_tokens, cached_prompt_tokens, output_tokens, latency_s,"
        " machine_s FROM calls WHERE cache_key = ? AND reused = 0 AND error IS NULL AND raw_output IS NOT NULL"
        " ORDER BY rowid DESC LIMIT 1",  # the newest (finished_at has only whole seconds)
        (key,),
    ).fetchone()
    return row


@dataclass(frozen=True)
class PastCalls:
    """Finished live calls of a pilot's stored runs, for `roi plan`'s time estimates."""

    pilots: dict[str, str]  # run_id -> the run's pilot_json
    seconds: list[tuple[str, str, str, float]]  # (run_id, model, mode, machine time, else latency)


def past_calls(path: Path, pilot: str) -> PastCalls | None:
    """The finished live calls of `pilot`'s runs; the store is opened read-only and never created or
    migrated (None when it is missing or unreadable)."""
    if not path.is_file():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        runs = db.execute("SELECT run_id, pilot_json FROM runs WHERE pilot = ?", (pilot,)).fetchall()
        rows = db.execute(
            "SELECT c.run_id, c.model, c.mode, COALESCE(c.machine_s, c.latency_s) FROM calls c JOIN runs r"
            " USING (run_id) WHERE r.pilot = ? AND c.error IS NULL AND c.reused = 0",
            (pilot,),
        ).fetchall()
    except sqlite3.DatabaseError:
        return None
    finally:
        db.close()
    return PastCalls({str(r): str(j) for r, j in runs}, [(str(r), str(m), str(o), float(s)) for r, m, o, s in rows])


def items_frame(db: sqlite3.Connection, run_id: str) -> pd.DataFrame:
    """Scored items joined with their call's latency, tokens and cost."""
    return pd.read_sql_query(
        "SELECT i.*, c.latency_s, c.machine_s, c.prompt_tokens, c.cached_prompt_tokens, c.output_tokens, c.cost_usd,"
        " c.n_items, c.error, c.reused FROM items i JOIN calls c USING (run_id, call_id)"
        " WHERE i.run_id = ? ORDER BY i.model, i.mode, i.task, i.item_id",
        db,
        params=(run_id,),
    )


def calls_frame(db: sqlite3.Connection, run_id: str) -> pd.DataFrame:
    return pd.read_sql_query("SELECT * FROM calls WHERE run_id = ? ORDER BY call_id", db, params=(run_id,))


# ---------------------------------------------------------------- purge (roi/purge.py)


@dataclass(frozen=True)
class RunRef:
    run_id: str
    pilot: str
    started_at: str


@dataclass(frozen=True)
class Removed:
    """Rows a purge deleted."""

    runs: int = 0
    calls: int = 0
    items: int = 0
    probe_rows: int = 0
    baselines: int = 0


def runs_started_before(db: sqlite3.Connection, before: str | None, pilot: str | None) -> list[RunRef]:
    """Runs started before the ISO time `before` (every run when None), of `pilot` (every pilot when None)."""
    rows = db.execute(
        "SELECT run_id, pilot, started_at FROM runs WHERE (? IS NULL OR started_at < ?) AND (? IS NULL OR pilot = ?)"
        " ORDER BY started_at",
        (before, before, pilot, pilot),
    ).fetchall()
    return [RunRef(r["run_id"], r["pilot"], r["started_at"]) for r in rows]


def latest_baselines(db: sqlite3.Connection) -> dict[str, str]:
    """Each pilot's accepted baseline run (its latest acceptance)."""
    rows = db.execute(
        "SELECT pilot, run_id FROM baselines b WHERE id = (SELECT MAX(id) FROM baselines WHERE pilot = b.pilot)"
    ).fetchall()
    return {r["pilot"]: r["run_id"] for r in rows}


def delete_runs(db: sqlite3.Connection, run_ids: list[str]) -> Removed:
    """Delete these runs with everything stored for them (calls with their prompts and outputs, scored
    items, probe rows, acceptances as baseline), in one transaction."""
    counts: dict[str, int] = {}
    with transaction(db):
        db.execute("CREATE TEMP TABLE IF NOT EXISTS purged (run_id TEXT PRIMARY KEY)")
        db.execute("DELETE FROM purged")
        db.executemany("INSERT OR IGNORE INTO purged VALUES (?)", [(r,) for r in run_ids])
        for table in ("items", "probe", "calls", "baselines", "batch_jobs", "runs"):
            cursor = db.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM purged)")
            counts[table] = cursor.rowcount
        db.execute("DELETE FROM purged")
    return Removed(counts["runs"], counts["calls"], counts["items"], counts["probe"], counts["baselines"])


def forget_response_cache(db: sqlite3.Connection, before: str, pilot: str | None) -> int:
    """Calls finished before the ISO time `before` stop answering later calls from the response cache
    (their runs and figures stay). Returns how many calls were cache sources."""
    with transaction(db):
        cursor = db.execute(
            "UPDATE calls SET cache_key = NULL WHERE cache_key IS NOT NULL AND finished_at < ?"
            " AND (? IS NULL OR run_id IN (SELECT run_id FROM runs WHERE pilot = ?))",
            (before, pilot, pilot),
        )
    return cursor.rowcount


def compact(db: sqlite3.Connection) -> None:
    """Rewrite the store without the pages deleted rows left behind, and empty the WAL journal, so
    purged text is gone from the files and not only from the tables."""
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# ---------------------------------------------------------------- baselines


def add_baseline(db: sqlite3.Connection, pilot: str, run_id: str, accepted_at: str) -> None:
    with transaction(db):
        db.execute("INSERT INTO baselines (pilot, run_id, accepted_at) VALUES (?, ?, ?)", (pilot, run_id, accepted_at))


def current_baseline(db: sqlite3.Connection, pilot: str) -> str | None:
    """The run most recently accepted as `pilot`'s baseline."""
    row = db.execute("SELECT run_id FROM baselines WHERE pilot = ? ORDER BY id DESC LIMIT 1", (pilot,)).fetchone()
    return None if row is None else str(row[0])


# ---------------------------------------------------------------- the superposition probe


def record_probe(db: sqlite3.Connection, run_id: str, rows: list[Any]) -> None:
    """Store one probe prompt's rows (dataclasses with the `probe` table's columns) atomically."""
    with transaction(db):
        for row in rows:
            _insert(db, "probe", run_id, row)


def probed_prompts(db: sqlite3.Connection, run_id: str, model: str) -> set[tuple[str, int]]:
    """(mixture, prompt index) of the prompts whose rows are stored for `model`."""
    rows = db.execute(
        "SELECT DISTINCT mixture, prompt_index FROM probe WHERE run_id = ? AND model = ?", (run_id, model)
    )
    return {(str(r[0]), int(r[1])) for r in rows}


def probe_rows(db: sqlite3.Connection, run_id: str, columns: list[str]) -> list[dict[str, Any]]:
    """The probe rows of a run, by model and in the order they were stored."""
    query = f"SELECT {', '.join(columns)} FROM probe WHERE run_id = ? ORDER BY model, rowid"
    return [dict(zip(columns, r, strict=True)) for r in db.execute(query, (run_id,))]


# ---------------------------------------------------------------- batch jobs


def batch_folder(out_dir: Path, run_id: str) -> Path:
    """Where a run's batch input and output files are kept (they hold prompts and replies)."""
    return out_dir / "batches" / run_id


class BatchJobs:
    """One run's and model's batch jobs (a `roi.backends.BatchJournal`)."""

    def __init__(self, db: sqlite3.Connection, run_id: str, model: str, folder: Path) -> None:
        self.db, self.run_id, self.model, self.folder = db, run_id, model, folder

    def open_batches(self) -> list[BatchRecord]:
        rows = self.db.execute(
            "SELECT * FROM batch_jobs WHERE run_id = ? AND model = ? AND collected_at IS NULL ORDER BY number",
            (self.run_id, self.model),
        )
        return [_batch_record(r) for r in rows]

    def finished_keys(self) -> set[str]:
        rows = self.db.execute(
            "SELECT call_id FROM calls WHERE run_id = ? AND model = ? AND error IS NULL", (self.run_id, self.model)
        )
        return {r[0] for r in rows}

    def uploaded(self, keys: Sequence[str], input_sha256: str, input_ref: str) -> BatchRecord:
        with transaction(self.db):
            cursor = self.db.execute(
                "INSERT INTO batch_jobs (run_id, model, keys_json, input_sha256, input_ref, uploaded_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self.run_id, self.model, json.dumps(list(keys)), input_sha256, input_ref, _now()),
            )
        return self._get(int(cursor.lastrowid or 0))

    def submitted(self, number: int, batch_id: str) -> BatchRecord:
        with transaction(self.db):
            self.db.execute(
                "UPDATE batch_jobs SET batch_id = ?, submitted_at = ? WHERE number = ?", (batch_id, _now(), number)
            )
        return self._get(number)

    def collected(self, number: int) -> None:
        with transaction(self.db):
            self.db.execute("UPDATE batch_jobs SET collected_at = ? WHERE number = ?", (_now(), number))

    def _get(self, number: int) -> BatchRecord:
        return _batch_record(self.db.execute("SELECT * FROM batch_jobs WHERE number = ?", (number,)).fetchone())


def _batch_record(row: sqlite3.Row) -> BatchRecord:
    return BatchRecord(
        number=row["number"],
        keys=tuple(json.loads(row["keys_json"])),
        input_ref=row["input_ref"],
        batch_id=row["batch_id"],
        submitted_at=row["submitted_at"],
    )


def batch_jobs_frame(db: sqlite3.Connection, run_id: str) -> pd.DataFrame:
    return pd.read_sql_query("SELECT * FROM batch_jobs WHERE run_id = ? ORDER BY number", db, params=(run_id,))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
