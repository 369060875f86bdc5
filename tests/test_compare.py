"""roi compare: paired on the items both runs answered (never an unpaired test), with exact McNemar
and a paired bootstrap interval; live latency and cost changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from roi import store
from roi.compare import compare_runs
from roi.errors import RoiError
from roi.pilot import LoadedPilot, load_pilot
from roi.prompts import PromptCall, Query
from roi.runner import RunOptions, run_pilot
from roi.stats import mcnemar_exact

from .conftest import PILOTS
from .fakes import FakeBackend


@pytest.fixture
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


def wrong_upper_in_mixed_after_item_3(query: Query, call: PromptCall) -> str | None:
    if call.mode == "mixed" and query.task == "upper" and int(query.item.id) > 3:
        return "WRONG"
    return query.item.output


def test_paired_changes_on_shared_items(demo: LoadedPilot, tmp_path: Path) -> None:
    spec = demo.spec.models[0]
    a = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=12, backends={"gemma-270m": FakeBackend(spec, demo)}))
    worse = FakeBackend(spec, demo, wrong_upper_in_mixed_after_item_3)
    b = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=14, fresh=True, backends={"gemma-270m": worse}))
    db = store.connect(tmp_path / "roi.db")
    result = compare_runs(db, a.run_id, b.run_id)
    cells = {(c.task, c.mode): c for c in result.cells}
    assert len(cells) == 8 and result.missing == []
    upper = cells[("upper", "mixed")]
    # Only the 12 shared items are paired; B's 2 extra items are counted apart.
    assert upper.shared == 12 and upper.only_a == 0 and upper.only_b == 2
    ids = sorted(int(i) for i in store.items_frame(db, a.run_id)["item_id"].unique())
    wrong = sum(1 for i in ids if i > 3)
    assert upper.accuracy_a.k == 12 and upper.accuracy_b.k == 12 - wrong
    assert upper.diff.a_only == wrong and upper.diff.b_only == 0
    assert upper.diff.mcnemar_p == pytest.approx(mcnemar_exact(wrong, 0))
    assert upper.diff.high is not None and upper.diff.high < 0 and upper.worse
    capital = cells[("capital", "mixed")]
    assert capital.diff.diff == 0 and capital.diff.mcnemar_p == 1.0 and not capital.worse
    # The fake's latency is 0.1 s per query: both runs live, so both medians are known.
    assert capital.latency_p50_a_s == pytest.approx(0.4) and capital.latency_p50_b_s == pytest.approx(0.4)
    assert capital.cost_per_item_a_usd == pytest.approx(0.4 * 0.40 / 3600 / 4)


def test_changed_items_are_not_paired(demo: LoadedPilot, tmp_path: Path) -> None:
    spec = demo.spec.models[0]
    a = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=3, backends={"gemma-270m": FakeBackend(spec, demo)}))
    b = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=3, backends={"gemma-270m": FakeBackend(spec, demo)}))
    db = store.connect(tmp_path / "roi.db")
    # The data set changed under the same item id: that item is no longer the same question.
    with store.transaction(db):
        db.execute(
            "UPDATE items SET input = 'changed' WHERE run_id = ? AND task = 'capital' AND item_id = '1'", (b.run_id,)
        )
    cells = {(c.task, c.mode): c for c in compare_runs(db, a.run_id, b.run_id).cells}
    assert cells[("capital", "single")].shared == 2 and cells[("capital", "single")].only_b == 1
    # Cached calls in B: latency is not live, so B's median is unknown rather than a copy of A's.
    assert cells[("upper", "single")].latency_p50_b_s is None


def test_unknown_run_is_a_user_error(demo: LoadedPilot, tmp_path: Path) -> None:
    db = store.connect(tmp_path / "roi.db")
    with pytest.raises(RoiError, match="no run 'nope'"):
        compare_runs(db, "nope", "nope2")
    assert isinstance(db, sqlite3.Connection)
