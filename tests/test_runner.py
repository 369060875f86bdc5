"""The runner with a deterministic fake backend: stored rows, figures, failures, interruption, resume."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from roi.backends import GenerationRequest, GenerationResult
from roi.pilot import LoadedPilot, load_pilot
from roi.prompts import PromptCall, Query
from roi.runner import RunOptions, run_pilot

from .conftest import PILOTS
from .fakes import FakeBackend


@pytest.fixture
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


def swap_upper_and_capital_in_mixed(query: Query, call: PromptCall) -> str | None:
    """Single mode is always right; in mixed calls `upper` gets capital's gold and en_fr is left out."""
    if call.mode == "single":
        return query.item.output
    if query.task == "upper":
        return next(q.item.output for q in call.queries if q.task == "capital")
    if query.task == "en_fr":
        return None
    return query.item.output


def test_rows_and_figures(demo: LoadedPilot, tmp_path: Path) -> None:
    backend = FakeBackend(demo.spec.models[0], demo, swap_upper_and_capital_in_mixed)
    result = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=10, backends={"gemma-270m": backend}))
    db = sqlite3.connect(tmp_path / "roi.db")
    assert db.execute("SELECT count(*) FROM calls").fetchone() == (4 * 10 + 10,)
    assert db.execute("SELECT count(*) FROM items").fetchone() == (2 * 4 * 10,)
    assert db.execute("SELECT status FROM runs").fetchone() == ("complete",)
    cells = {(c.task, c.mode): c for c in result.summary.cells}
    assert all(cells[(t, "single")].accuracy.value == 1.0 for t in ("capital", "upper", "number_en", "en_fr"))
    upper = cells[("upper", "mixed")]
    assert upper.accuracy.value == 0.0 and upper.swaps.k == 10
    assert upper.vs_single is not None and upper.vs_single.diff == -1.0 and upper.vs_single.n == 10
    assert upper.vs_single.mcnemar_p == pytest.approx(2 / 2**10)
    en_fr = cells[("en_fr", "mixed")]
    assert en_fr.unparseable.k == 10 and en_fr.accuracy.value == 0.0
    assert cells[("capital", "mixed")].accuracy.value == 1.0
    # local cost = machine time x usd_per_hour; a mixed call's cost is shared by its 4 items
    assert cells[("capital", "single")].cost_per_item_usd == pytest.approx(0.1 * 0.40 / 3600)
    assert cells[("capital", "mixed")].cost_per_item_usd == pytest.approx(0.4 * 0.40 / 3600 / 4)
    assert cells[("capital", "mixed")].latency_p95_s == pytest.approx(0.4)  # whole call's wall time
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert {c["task"] for c in summary["cells"]} == {"capital", "upper", "number_en", "en_fr"}
    items_csv = (result.run_dir / "items.csv").read_text()
    assert items_csv.count("\n") == 80 + 1


def test_unknown_cost_is_none_not_zero(demo: LoadedPilot, tmp_path: Path) -> None:
    spec = demo.spec.models[0].model_copy(update={"cost": None})
    pilot = LoadedPilot(demo.spec.model_copy(update={"models": [spec]}), demo.path, demo.sha256, demo.tasks)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=2, backends={"gemma-270m": FakeBackend(spec, pilot)}))
    assert all(c.cost_per_item_usd is None for c in result.summary.cells)
    assert all(m.cost_usd is None for m in result.summary.modes)


def test_failed_calls_are_recorded_and_resume_repeats_only_them(demo: LoadedPilot, tmp_path: Path) -> None:
    failing = {"gemma-270m/single:capital:1", "gemma-270m/mixed:g0:1"}
    first = FakeBackend(demo.spec.models[0], demo, fail_keys=failing)
    result = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=3, backends={"gemma-270m": first}))
    modes = {m.mode: m for m in result.summary.modes}
    assert modes["single"].failed_calls == 1 and modes["mixed"].failed_calls == 1
    assert modes["single"].retries == 2 and modes["mixed"].retries == 2  # counted in the end table
    db = sqlite3.connect(tmp_path / "roi.db")
    assert db.execute("SELECT error FROM calls WHERE call_id = 'gemma-270m/single:capital:1'").fetchone() == (
        "HTTP 500 from fake",
    )
    assert db.execute("SELECT status FROM runs").fetchone() == ("complete_with_failures",)
    second = FakeBackend(demo.spec.models[0], demo)
    resumed = run_pilot(
        demo, RunOptions(out_dir=tmp_path, limit=3, resume=result.run_id, backends={"gemma-270m": second})
    )
    assert sorted(second.seen) == sorted(failing)
    assert all(m.failed_calls == 0 for m in resumed.summary.modes)
    assert db.execute("SELECT count(*) FROM items").fetchone() == (2 * 4 * 3,)


def test_interrupted_run_keeps_finished_calls_and_resumes(demo: LoadedPilot, tmp_path: Path) -> None:
    first = FakeBackend(demo.spec.models[0], demo, interrupt_after=5)
    with pytest.raises(KeyboardInterrupt):
        run_pilot(demo, RunOptions(out_dir=tmp_path, limit=3, backends={"gemma-270m": first}))
    db = sqlite3.connect(tmp_path / "roi.db")
    run_id, status = db.execute("SELECT run_id, status FROM runs").fetchone()
    assert status == "interrupted"
    assert db.execute("SELECT count(*) FROM calls").fetchone() == (5,)
    second = FakeBackend(demo.spec.models[0], demo)
    run_pilot(demo, RunOptions(out_dir=tmp_path, limit=3, resume=run_id, backends={"gemma-270m": second}))
    assert len(second.seen) == 4 * 3 + 3 - 5
    assert not set(second.seen) & set(first.seen)
    assert db.execute("SELECT count(*) FROM calls").fetchone() == (15,)


def test_resume_refuses_a_changed_pilot(demo: LoadedPilot, tmp_path: Path) -> None:
    from roi.errors import RoiError

    run = run_pilot(
        demo, RunOptions(out_dir=tmp_path, limit=1, backends={"gemma-270m": FakeBackend(demo.spec.models[0], demo)})
    )
    changed = LoadedPilot(demo.spec, demo.path, "0" * 64, demo.tasks)
    with pytest.raises(RoiError, match="different version"):
        run_pilot(
            changed,
            RunOptions(
                out_dir=tmp_path,
                limit=1,
                resume=run.run_id,
                backends={"gemma-270m": FakeBackend(demo.spec.models[0], demo)},
            ),
        )


def test_missing_api_key_fails_before_anything_is_written(
    demo: LoadedPilot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from roi.errors import RoiError
    from roi.pilot import ModelSpec

    monkeypatch.delenv("ROI_TEST_ABSENT_KEY", raising=False)
    api = ModelSpec(
        name="api", backend="openai", model="m", base_url="http://127.0.0.1:9/v1", api_key_env="ROI_TEST_ABSENT_KEY"
    )
    pilot = LoadedPilot(demo.spec.model_copy(update={"models": [api]}), demo.path, demo.sha256, demo.tasks)
    with pytest.raises(RoiError, match="ROI_TEST_ABSENT_KEY is not set"):
        run_pilot(pilot, RunOptions(out_dir=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_probe_model_that_cannot_load_fails_the_run(
    demo: LoadedPilot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe builds its own backend when the calls needed none (all reused): failing there is exit 1,
    as for the calls' models, since the run is stored by then (not exit 2, bad input)."""
    from roi.errors import ExitCode, RunFailed
    from roi.pilot import ModelSpec
    from roi.runner import _Held, _probe_backend

    monkeypatch.delenv("ROI_TEST_ABSENT_KEY", raising=False)
    api = ModelSpec(
        name="api", backend="openai", model="m", base_url="http://127.0.0.1:9/v1", api_key_env="ROI_TEST_ABSENT_KEY"
    )
    with pytest.raises(RunFailed, match=r"model 'api' could not load: .*ROI_TEST_ABSENT_KEY") as error:
        _probe_backend(api, demo, RunOptions(out_dir=tmp_path), _Held())
    assert error.value.exit_code == ExitCode.FAILED_TO_RUN


def test_each_mode_runs_as_its_own_batch_priced_by_machine_time(demo: LoadedPilot, tmp_path: Path) -> None:
    """A local engine's machine time per mode is what that mode costs alone: the runner never mixes the
    modes' calls in one batch, and a call's cost is its machine time (not its latency) x usd_per_hour."""
    batches: list[set[str]] = []

    class Recording(FakeBackend):
        def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
            batches.append({r.key.split("/")[1].split(":")[0] for r in requests})
            for result in super().generate(requests):
                yield dataclasses.replace(result, latency_s=9.0, machine_s=0.25 * (result.machine_s or 0))

    backend = Recording(demo.spec.models[0], demo)
    result = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=3, backends={"gemma-270m": backend}))
    assert batches == [{"single"}, {"mixed"}]
    db = sqlite3.connect(tmp_path / "roi.db")
    rows = db.execute("SELECT mode, machine_s, cost_usd, n_items FROM calls").fetchall()
    for _, machine_s, cost, _ in rows:
        assert cost == pytest.approx(machine_s * 0.40 / 3600)
    modes = {m.mode: m for m in result.summary.modes}
    # fake machine time: 0.025 s per item in both modes; items/s is answered items per machine second
    assert modes["single"].compute_basis == "machine" and modes["single"].compute_s == pytest.approx(12 * 0.025)
    assert modes["mixed"].items_per_s == pytest.approx(1 / 0.025)


def test_the_library_example_of_the_architecture_doc_runs(embedded_model_dir: Path, tmp_path: Path) -> None:
    """The docs' `roi` library example, as written, on the embedded model (from a folder whose pilots/
    is the repository's, so its relative paths and the default ./reports hold)."""
    import os
    import re
    import subprocess
    import sys

    doc = (PILOTS.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    found = re.search(r"## The library without the CLI\n\n```python\n(.*?)```", doc, re.DOTALL)
    assert found is not None, "docs/architecture.md shows no library example"
    (tmp_path / "pilots").symlink_to(PILOTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PILOTS.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", found.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() and (tmp_path / "reports" / "roi.db").exists()
