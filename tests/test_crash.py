"""Crash safety on the real embedded model: a `roi run` process SIGKILLed mid-way leaves an intact
store with every finished call; a plain re-run takes over the dead run's lock, resumes that run and
sends only the calls that were missing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roi.events import read_events

from .conftest import PILOTS, REPO

DATA = PILOTS / "data" / "demo"
# 2 tasks x 4 items, single prompts only, one call decoded at a time: a batch finishes its calls
# within milliseconds of each other, so a kill between two stored calls needs them in sequence.
LIMIT = 4
TOTAL = 2 * LIMIT


def write_pilot(path: Path) -> Path:
    path.write_text(
        f"""pilot: crash-test
business_unit: Tests
owner: tests@example.com
models:
  - name: gemma-270m
    backend: transformers
    model: embedded
    max_batch: 1
    cost: {{usd_per_hour: 0.40}}
tasks:
  - name: capital
    instruction: Give the capital city of the country.
    examples: {DATA / "capital_examples.csv"}
    eval: {DATA / "capital_eval.csv"}
    scorer: {{type: exact, strip_punctuation: true}}
  - name: upper
    instruction: Write the word in upper case.
    examples: {DATA / "upper_examples.csv"}
    eval: {DATA / "upper_eval.csv"}
    scorer: {{type: exact, case_sensitive: true}}
modes:
  single: {{shots: 2}}
  mixed: {{enabled: false}}
""",
        encoding="utf-8",
    )
    return path


def roi_run(pilot: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "roi", "run", str(pilot), "--limit", str(LIMIT), "--fresh", "--out", str(out), *extra]


def env() -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "ROI_CACHE_DIR") if k in os.environ}
    return keep | {"COLUMNS": "250"}


def stored_calls(db_path: Path) -> list[tuple[str, str, str, float]]:
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT call_id, raw_output, finished_at, latency_s FROM calls ORDER BY call_id").fetchall()
    except sqlite3.OperationalError:  # the schema is still being created
        return []
    finally:
        db.close()


@pytest.mark.model
def test_sigkill_mid_run_keeps_finished_calls_and_a_rerun_resumes(tmp_path: Path, embedded_model_dir: Path) -> None:
    pilot, out, log = write_pilot(tmp_path / "crash.yaml"), tmp_path / "out", tmp_path / "events.jsonl"
    db_path = out / "roi.db"
    proc = subprocess.Popen(
        roi_run(pilot, out, "--quiet", "--log-json", str(log)),
        cwd=REPO,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 400
    while len(stored_calls(db_path)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()

    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    (run_id, status) = db.execute("SELECT run_id, status FROM runs").fetchone()
    assert status == "running"  # killed: nothing could mark it
    kept = stored_calls(db_path)
    assert 2 <= len(kept) < TOTAL
    # Every kept call has its scored items (call and items are one transaction).
    for call_id, *_ in kept:
        assert db.execute("SELECT COUNT(*) FROM items WHERE call_id = ?", (call_id,)).fetchone() == (1,)
    db.close()

    again = subprocess.run(
        roi_run(pilot, out, "--quiet", "--log-json", str(log)),
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert again.returncode == 0, again.stderr
    assert run_id in again.stdout
    events = read_events(log)
    second = [e for e in events if e["pid"] != proc.pid]
    taken = next(e for e in second if e["event"] == "lock_taken_over")
    assert taken["previous_pid"] == proc.pid and taken["previous_run_id"] == run_id
    assert next(e for e in second if e["event"] == "run_resumed")["run_id"] == run_id
    calls = next(e for e in second if e["event"] == "model_calls")
    assert calls["to_send"] == TOTAL - len(kept) and calls["reused"] == 0

    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT COUNT(*), MIN(status) FROM runs").fetchone() == (1, "complete")
    after = stored_calls(db_path)
    assert len(after) == TOTAL and set(kept) <= set(after)  # the kept calls are untouched, byte for byte
    assert db.execute("SELECT COUNT(*) FROM items WHERE run_id = ?", (run_id,)).fetchone() == (TOTAL,)
    db.close()
