"""`roi run` for cron: --log-json events, --quiet one-line result, exit codes 0/1/3, through the real
CLI in a subprocess. The runs here are answered from the response cache (filled by a fake-backend run
in the same store), so no model is loaded; the real model's crash/resume test is in test_crash.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from roi import locking
from roi.events import EventLog, read_events
from roi.pilot import load_pilot
from roi.runner import RunOptions, run_pilot

from .conftest import PILOTS, REPO, lenient_demo
from .fakes import FakeBackend
from .test_runner import swap_upper_and_capital_in_mixed

DEMO = PILOTS / "superposition-demo.yaml"


def roi(*args: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(out), "COLUMNS": "250"}
    if "ROI_CACHE_DIR" in os.environ:
        env["ROI_CACHE_DIR"] = os.environ["ROI_CACHE_DIR"]
    return subprocess.run(
        [sys.executable, "-m", "roi", *args, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_event_log_appends_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    with EventLog(path) as log:
        log.emit("one", n=1)
    with EventLog(path) as log:
        log.emit("two", run_id="r", regressions=["a -> b"])
    events = read_events(path)
    assert [e["event"] for e in events] == ["one", "two"]
    assert events[0]["n"] == 1 and events[1]["regressions"] == ["a -> b"] and events[1]["pid"] == os.getpid()
    assert all("ts" in e for e in events)


def test_cron_run_exit_codes_quiet_line_and_events(tmp_path: Path) -> None:
    path = lenient_demo(tmp_path / "pilot")
    demo = load_pilot(path)
    spec = demo.spec.models[0]
    good = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=30, backends={"gemma-270m": FakeBackend(spec, demo)}))
    # A worse model behind the same name: its answers become the newest cache entries.
    worse = FakeBackend(spec, demo, swap_upper_and_capital_in_mixed)
    run_pilot(demo, RunOptions(out_dir=tmp_path, limit=30, fresh=True, backends={"gemma-270m": worse}))
    assert roi("accept", good.run_id, out=tmp_path).returncode == 0

    log = tmp_path / "events.jsonl"
    done = roi("run", str(path), "--limit", "30", "--quiet", "--log-json", str(log), out=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    (line,) = done.stdout.strip().splitlines()
    assert "superposition-demo" in line and "regression(s) vs " + good.run_id in line and "exit 3" in line
    events = read_events(log)
    names = [e["event"] for e in events]
    # the worse answers drop upper and en_fr: the measured plan's calls, reused too, follow
    assert names == ["run_started", "model_calls", "plan_calls", "run_finished"]
    assert events[1]["reused"] == 150 and events[1]["to_send"] == 0
    assert events[2]["reused"] == 30 and events[2]["to_send"] == 0
    finished = events[-1]
    assert finished["regressed"] is True and finished["reference"] == good.run_id
    assert any("all_tasks_mixed" in r for r in finished["regressions"]) and finished["notify"] == "not_configured"
    run_id = finished["run_id"]

    compared = roi("compare", good.run_id, run_id, "--json", out=tmp_path)
    assert compared.returncode == 0, compared.stderr
    cells = {(c["task"], c["mode"]): c for c in json.loads(compared.stdout)["cells"]}
    assert cells[("upper", "mixed")]["diff"]["diff"] == -1.0 and cells[("upper", "mixed")]["shared"] == 30
    assert cells[("capital", "single")]["diff"]["mcnemar_p"] == 1.0

    # Once the new behaviour is accepted, the same run is no regression: exit 0.
    assert roi("accept", run_id, out=tmp_path).returncode == 0
    again = roi("run", str(path), "--limit", "30", "--quiet", out=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"no regression vs {run_id}" in again.stdout and "exit 0" in again.stdout

    not_complete = roi("accept", "no-such-run", out=tmp_path)
    assert not_complete.returncode == 2 and "no run 'no-such-run'" in not_complete.stderr


def test_a_second_run_of_a_running_pilot_fails_at_once(tmp_path: Path) -> None:
    with locking.PilotLock(tmp_path, "superposition-demo") as lock:
        lock.note_run("run-in-progress")
        busy = roi("run", str(DEMO), "--limit", "1", "--quiet", "--log-json", str(tmp_path / "e.jsonl"), out=tmp_path)
    assert busy.returncode == 1
    message = " ".join(busy.stderr.split())
    assert "already running as run run-in-progress" in message and f"pid {os.getpid()}" in message
    assert read_events(tmp_path / "e.jsonl")[-1]["event"] == "run_failed"
    assert not (tmp_path / "roi.db").exists()
