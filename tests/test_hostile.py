"""roi against hostile servers of its own on loopback (tests/servers/hostile.py): a server that echoes
the key, drips bytes or headers, answers garbage, refuses the key or asks to come back in an hour.
No piece of the key reaches a file or the terminal, every run ends within its deadlines, permanent
errors stop the model at once, and runs whose calls failed exit 4."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from roi.backends.openai_backend import OpenAIBackend
from roi.errors import ExitCode, RoiError
from roi.pilot import load_pilot
from roi.runner import RunOptions, RunResult, run_pilot
from tests.servers import Behaviour, HostileServer

from .conftest import PILOTS, REPO

KEY = "sk-HOSTILE-0123456789abcdefghijklmn"
KEY_ENV = "ROI_HOSTILE_TEST_KEY"
CALLS = 4  # two tasks x two items, single mode only
SLACK_S = 8.0  # summary, report and store work after the last call, on a loaded 2-core machine


def api_pilot(base_url: str, key_env: str = KEY_ENV, **model: Any) -> str:
    """Two demo tasks, single mode, on one API model with a key."""
    data = (PILOTS / "data" / "demo").resolve()
    settings = "".join(f"\n    {k}: {v}" for k, v in {"max_retries": 0, **model}.items())
    return f"""
pilot: hostile
business_unit: test
owner: test@example.com
models:
  - name: api
    backend: openai
    model: hostile-model
    base_url: {base_url}
    api_key_env: {key_env}
    endpoint: completions{settings}
tasks:
  - name: capital
    instruction: Give the capital city of the country.
    examples: {data / "capital_examples.csv"}
    eval: {data / "capital_eval.csv"}
    scorer: exact
  - name: upper
    instruction: Write the word in upper case.
    examples: {data / "upper_examples.csv"}
    eval: {data / "upper_eval.csv"}
    scorer: exact
modes:
  single: {{shots: 2}}
  mixed: {{enabled: false}}
"""


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setattr(OpenAIBackend, "backoff_base_s", 0.01)
    return KEY


def run(tmp_path: Path, pilot_text: str, **options: Any) -> tuple[RunResult, float]:
    path = tmp_path / "hostile.yaml"
    path.write_text(pilot_text, encoding="utf-8")
    started = time.monotonic()
    result = run_pilot(load_pilot(path), RunOptions(out_dir=tmp_path / "reports", limit=2, **options))
    return result, time.monotonic() - started


def stored_calls(result: RunResult) -> list[sqlite3.Row]:
    db = sqlite3.connect(result.db_path)
    db.row_factory = sqlite3.Row
    return db.execute("SELECT * FROM calls WHERE run_id = ? ORDER BY call_id", (result.run_id,)).fetchall()


def key_pieces(size: int = 12) -> list[str]:
    return [KEY[i : i + size] for i in range(len(KEY) - size + 1)]


def test_an_echoed_key_reaches_no_file_and_no_terminal(tmp_path: Path) -> None:
    with HostileServer(Behaviour.ECHO_KEY) as server:
        pilot = tmp_path / "hostile.yaml"
        pilot.write_text(api_pilot(server.url), encoding="utf-8")
        out, log = tmp_path / "reports", tmp_path / "logs" / "events.jsonl"
        env = {**os.environ, KEY_ENV: KEY, "COLUMNS": "120"}
        command = [sys.executable, "-m", "roi", "run", str(pilot), "--out", str(out), "--limit", "2"]
        done = subprocess.run(
            [*command, "--log-json", str(log)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
    assert server.requests == CALLS and all(KEY in h["authorization"] for h in server.seen_headers)
    assert done.returncode == ExitCode.INCOMPLETE, done.stderr  # every call failed
    assert "4 of 4 calls failed" in done.stdout
    db = sqlite3.connect(out / "roi.db")
    errors = [row[0] for row in db.execute("SELECT error FROM calls")]
    assert len(errors) == CALLS and all(e.startswith("BadRequestError (HTTP 400)") for e in errors)
    assert all(len(e) <= 300 and "[redacted]" in e for e in errors)
    db.close()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "hostile.yaml"]
    names = {p.name for p in written}
    assert {"roi.db", "calls.csv", "items.csv", "summary.json", "report.html", "events.jsonl"} <= names
    for path in written:
        data = path.read_bytes()
        assert not [p for p in key_pieces() if p.encode() in data], path
    terminal = done.stdout + done.stderr
    assert not [p for p in key_pieces() if p in terminal]


@pytest.mark.parametrize("behaviour", [Behaviour.DRIP_BODY, Behaviour.ENDLESS_HEADERS, Behaviour.GARBAGE])
def test_each_attempt_ends_within_its_deadline(tmp_path: Path, behaviour: Behaviour) -> None:
    timeout_s, retries = 1.0, 1
    with HostileServer(behaviour, drip_s=0.2) as server:
        result, elapsed = run(tmp_path, api_pilot(server.url, timeout_s=timeout_s, max_retries=retries))
    calls = stored_calls(result)
    assert len(calls) == CALLS and all(c["error"] is not None for c in calls)
    assert all(c["retries"] == retries for c in calls)  # transient: retried, then recorded
    # All four calls run at once: the run lasts about (retries + 1) attempts, each cut at timeout_s.
    assert elapsed < (retries + 1) * timeout_s + SLACK_S
    if behaviour is not Behaviour.GARBAGE:
        assert all(c["error"].startswith("AttemptTimeout") for c in calls)
        assert all(c["latency_s"] < (retries + 1) * timeout_s + 1.0 for c in calls)
    assert result.exit_code == ExitCode.INCOMPLETE


def test_retry_after_is_capped(tmp_path: Path) -> None:
    with HostileServer(Behaviour.RETRY_LATER) as server:
        result, elapsed = run(tmp_path, api_pilot(server.url, max_retries=1, max_retry_after_s=0.5))
    calls = stored_calls(result)
    assert server.requests == 2 * CALLS  # the server asked for an hour; each call waited 0.5 s and tried again
    assert all(c["backoff_s"] == pytest.approx(0.5) and "HTTP 429" in c["error"] for c in calls)
    assert elapsed < 0.5 + SLACK_S


def test_a_permanent_error_stops_the_model_at_once(tmp_path: Path) -> None:
    told: list[str] = []
    with HostileServer(Behaviour.UNAUTHORIZED) as server:
        result, _ = run(tmp_path, api_pilot(server.url, max_retries=4, max_concurrency=1), status=told.append)
    assert server.requests == 1  # 401: not retried, and no other call was sent
    calls = stored_calls(result)
    assert len(calls) == CALLS and all(c["retries"] == 0 for c in calls)
    first = [c for c in calls if c["error"].startswith("AuthenticationError (HTTP 401)")]
    not_sent = [c for c in calls if c["error"].startswith("NotSent: stopped after a permanent error")]
    assert len(first) == 1 and len(not_sent) == CALLS - 1
    assert sum("its other calls are not sent" in line for line in told) == 1
    assert result.exit_code == ExitCode.INCOMPLETE
    assert result.incomplete == [f"api: {CALLS} of {CALLS} calls failed (limit 10%)"]


def test_an_unknown_host_stops_the_model(tmp_path: Path) -> None:
    result, _ = run(tmp_path, api_pilot("https://no-such-host.invalid/v1", max_retries=4, max_concurrency=1))
    calls = stored_calls(result)
    assert all(c["retries"] == 0 for c in calls)
    assert sum(c["error"].startswith("NotSent") for c in calls) == CALLS - 1


def test_the_run_deadline_ends_a_run_held_by_a_slow_server(tmp_path: Path) -> None:
    minutes = 0.05  # 3 s, against a server that would drip for minutes within each 60 s attempt
    with HostileServer(Behaviour.DRIP_BODY, drip_s=0.2) as server:
        result, elapsed = run(tmp_path, api_pilot(server.url, timeout_s=60), max_minutes=minutes)
    assert elapsed < minutes * 60 + SLACK_S
    assert stored_calls(result) == []  # what was in flight is not recorded: a resume sends it
    assert result.exit_code == ExitCode.INCOMPLETE
    assert result.stopped is not None and "run deadline" in result.stopped
    db = sqlite3.connect(result.db_path)
    assert db.execute("SELECT status FROM runs").fetchone()[0] == "stopped_deadline"


def test_a_key_is_not_sent_in_clear_text_to_another_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text(api_pilot("http://10.1.2.3:8000/v1"), encoding="utf-8")
    with pytest.raises(RoiError) as refused:
        load_pilot(path)
    (problem,) = refused.value.problems
    assert problem.field == "models[0].base_url" and problem.line == 9 and "https" in problem.message
    monkeypatch.setenv("ROI_PLAIN_HTTP_KEY_HOSTS", "10.1.2.3")
    load_pilot(path)  # the operator's override for a private network
    monkeypatch.delenv("ROI_PLAIN_HTTP_KEY_HOSTS")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://10.1.2.3:8000/v1")  # where the client would go without base_url
    path.write_text(api_pilot("https://api.example.com/v1").replace("    base_url: https://api.example.com/v1\n", ""))
    with pytest.raises(RoiError, match=r"OPENAI_BASE_URL: .* clear text to 10\.1\.2\.3"):
        run_pilot(load_pilot(path), RunOptions(out_dir=tmp_path / "reports"))
    assert not (tmp_path / "reports").exists()


def test_base_url_must_be_an_http_url(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(api_pilot("not a url"), encoding="utf-8")
    env = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "roi", "validate", str(path)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == ExitCode.BAD_INPUT and "Traceback" not in done.stderr
    assert f"{path}:9 models[0].base_url: not an http(s) URL" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]
