"""roi history: runs newest first with models, decision, headline figures (with interval and n) and the
baseline marked; the same through the CLI's --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from roi import baseline, store
from roi.history import history
from roi.pilot import load_pilot
from roi.runner import RunOptions, run_pilot

from .conftest import PILOTS, REPO
from .fakes import FakeBackend
from .test_runner import swap_upper_and_capital_in_mixed


def test_history_rows_and_cli_json(tmp_path: Path) -> None:
    demo = load_pilot(PILOTS / "superposition-demo.yaml")
    spec = demo.spec.models[0]
    good = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=4, backends={"gemma-270m": FakeBackend(spec, demo)}))
    bad_backend = FakeBackend(spec, demo, swap_upper_and_capital_in_mixed)
    bad = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=4, fresh=True, backends={"gemma-270m": bad_backend}))
    cached = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=4, backends={"gemma-270m": FakeBackend(spec, demo)}))
    db = store.connect(tmp_path / "roi.db")
    baseline.accept(db, good.run_id)
    rows = history(db, demo.name)
    assert [r.run_id for r in rows] == [cached.run_id, bad.run_id, good.run_id]
    assert [r.baseline for r in rows] == [False, False, True]
    newest, middle, oldest = rows
    assert oldest.status == "complete" and oldest.item_limit == 4 and oldest.models == ["gemma-270m"]
    assert oldest.accuracy["single"].k == 16 and oldest.accuracy["single"].n == 16
    assert oldest.accuracy["mixed"].k == 16 and oldest.accuracy["mixed"].low is not None
    assert middle.accuracy["mixed"].k == 8  # upper swapped and en_fr missing in every mixed call
    assert oldest.decision is not None and oldest.decision["model"] == "gemma-270m"
    assert oldest.cost_usd is not None and oldest.cost_usd > 0
    assert (newest.calls, newest.reused_calls, oldest.reused_calls) == (20, 20, 0)
    assert history(db, "another-pilot") == []
    db.close()

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "250"}
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "roi",
            "history",
            str(PILOTS / "superposition-demo.yaml"),
            "--out",
            str(tmp_path),
            "--json",
            "--last",
            "2",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [r["run_id"] for r in data] == [cached.run_id, bad.run_id]
    assert data[1]["accuracy"]["mixed"]["k"] == 8 and data[1]["accuracy"]["mixed"]["n"] == 16
    table = subprocess.run(
        [sys.executable, "-m", "roi", "history", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and f"★ {good.run_id}" in table.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "roi", "history", "--out", str(tmp_path / "none")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "no run store here" in missing.stderr


def test_history_of_a_pilot_file_whose_data_has_moved(tmp_path: Path) -> None:
    """Only the pilot's name is read: its data files need not be where they were."""
    moved = tmp_path / "demo.yaml"
    moved.write_text((PILOTS / "superposition-demo.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    store.connect(tmp_path / "roi.db").close()
    shown = subprocess.run(
        [sys.executable, "-m", "roi", "history", str(moved), "--out", str(tmp_path), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == []
