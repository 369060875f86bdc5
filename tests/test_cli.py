"""The installed `roi` command, run as users run it, on the real embedded model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roi.errors import ExitCode
from tests.servers import Behaviour, HostileServer

from .conftest import PILOTS, REPO
from .test_hostile import KEY, KEY_ENV, api_pilot

ROI = [sys.executable, "-m", "roi"]


def roi(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*ROI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_bad_pilot_exits_2_without_traceback(tmp_path: Path) -> None:
    pilot = tmp_path / "bad.yaml"
    pilot.write_text("pilot: x\nbusiness_unit: u\nowner: o\nmodels: []\ntasks: []\nfoo: 1\n")
    for command in ("validate", "run"):
        result = roi(command, str(pilot), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert f"{pilot}:4 models" in result.stderr and f"{pilot}:6 foo: unknown key" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing written, no reports/


def test_usage_error_exits_2() -> None:
    result = roi("run")
    assert result.returncode == 2
    assert "Missing argument" in result.stderr


DEFAULT_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); import roi.__main__"


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path: Path) -> None:
    """SIGINT while a call is in flight (a server that drips its reply): exit 130, the README's message,
    and the run stored as interrupted, for the same command to resume."""
    pilot = tmp_path / "hostile.yaml"
    with HostileServer(Behaviour.DRIP_BODY, drip_s=0.5) as server:
        pilot.write_text(api_pilot(server.url, timeout_s=60), encoding="utf-8")
        env = {**os.environ, "COLUMNS": "200", KEY_ENV: KEY, "PYTHONFAULTHANDLER": "1"}
        # A process started in the background (`make test &`) inherits SIGINT ignored, and Python then
        # installs no KeyboardInterrupt: give roi the default handler a terminal's Ctrl-C meets.
        command = [sys.executable, "-c", DEFAULT_SIGINT, "run", str(pilot), "--out", str(tmp_path / "reports")]
        command += ["--limit", "2", "--quiet"]
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300  # bounds a hang only: a loaded machine may start roi slowly
        while server.requests == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints where every thread hangs
            _, stderr = proc.communicate(timeout=60)
            pytest.fail(f"roi run ignored Ctrl-C; its threads:\n{stderr[-5000:]}")
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    assert "Interrupted: finished calls are stored; the same roi run command resumes the run." in stderr
    assert "Traceback" not in stderr
    db = sqlite3.connect(tmp_path / "reports" / "roi.db")
    try:
        assert db.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    finally:
        db.close()


def test_help_lists_commands_and_exit_codes() -> None:
    result = roi("--help")
    assert result.returncode == 0
    for word in ("run", "validate", "Exit codes"):
        assert word in result.stdout


@pytest.mark.model
def test_run_demo_end_to_end_on_the_embedded_model(tmp_path: Path) -> None:
    result = roi("run", str(PILOTS / "superposition-demo.yaml"), "--limit", "2", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy drop" in result.stdout and "capital" in result.stdout
    db = sqlite3.connect(tmp_path / "out" / "roi.db")
    ((run_id, status, env),) = db.execute("SELECT run_id, status, environment_json FROM runs").fetchall()
    assert status == "complete"
    assert json.loads(env)["gemma-270m"]["device"] == "cpu"
    calls = db.execute(
        "SELECT mode, count(*), sum(prompt_tokens > 0), sum(output_tokens > 0), "
        "sum(latency_s > 0), sum(cost_usd > 0) FROM calls GROUP BY mode ORDER BY mode"
    ).fetchall()
    assert calls == [("mixed", 2, 2, 2, 2, 2), ("single", 8, 8, 8, 8, 8)]
    answers = dict(db.execute("SELECT task || '/' || input, answer FROM items WHERE mode = 'single'").fetchall())
    # Greedy decoding on fixed weights: the embedded model's real answers, stable run to run.
    assert answers["capital/Greece"] == "Athens"
    assert answers["upper/table"] == "TABLE"
    raw = db.execute("SELECT raw_output FROM calls WHERE mode = 'mixed'").fetchall()
    assert all("A[2]" in r[0] for r in raw)  # the model kept the mixed answer format
    run_dir = tmp_path / "out" / "superposition-demo" / run_id
    summary = json.loads((run_dir / "summary.json").read_text())
    cells = {(c["task"], c["mode"]): c for c in summary["cells"]}
    assert len(cells) == 8
    mixed = cells[("capital", "mixed")]
    assert mixed["accuracy"]["n"] == 2 and mixed["vs_single"]["n"] == 2
    assert mixed["latency_p50_s"] > 0 and mixed["cost_per_item_usd"] > 0
    assert (run_dir / "items.csv").read_text().count("\n") == 16 + 1
    # A local call is priced by its measured machine time in its mode's batch, not its modelled latency.
    priced = db.execute("SELECT machine_s, cost_usd FROM calls").fetchall()
    assert all(m > 0 and cost == pytest.approx(m * 0.40 / 3600) for m, cost in priced)
    # The report's "where the saving comes from" agrees with items/s of the end table (summary.json).
    report = json.loads((run_dir / "report.json").read_text())
    cost = next(s for s in report["sections"] if s["id"] == "cost")["data"]["models"][0]
    per_item = {r["figures"]["mode"]: r["figures"]["cost_per_item_usd"] for r in cost["savings"]["rows"]}
    rate = {m["mode"]: m["items_per_s"] for m in summary["modes"]}
    assert {m["compute_basis"] for m in summary["modes"]} == {"machine"}
    for mode in ("single", "mixed"):
        assert per_item[mode] == pytest.approx(0.40 / 3600 / rate[mode])
    assert 1 - per_item["mixed"] / per_item["single"] == pytest.approx(1 - rate["single"] / rate["mixed"])
