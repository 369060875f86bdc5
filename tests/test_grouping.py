"""Task grouping: the interference matrix and which tasks share a call."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from roi.economics import task_pairs
from roi.grouping import interference_matrix, recommend_grouping

from .test_decision import gamma_takes_alphas_answer, make_pilot, run_fake


def items(rows: list[tuple[str, str, str | None, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model": "m", "mode": mode, "task": task, "swap_with": swap, "other_task_space": space}
            for mode, task, swap, space in rows
        ]
    )


def test_matrix_counts_by_answered_and_other_task() -> None:
    frame = items(
        [
            ("mixed", "a", "b", "b"),
            ("mixed", "a", "b", None),
            ("mixed", "a", None, None),
            ("mixed", "b", None, "c"),
            ("mixed", "c", None, None),
            ("single", "a", "b", "b"),
        ]
    )
    m = interference_matrix(frame, "m", ["a", "b", "c"])
    assert m.items == [3, 1, 1]  # single-mode rows are not part of interference
    assert m.swaps == [[0, 2, 0], [0, 0, 0], [0, 0, 0]]
    assert m.other_space == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_failing_task_stays_single_and_two_are_needed(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, ("alpha", "beta", "gamma"))
    result = run_fake(pilot, tmp_path, gamma_takes_alphas_answer)
    import sqlite3

    from roi import store

    db = sqlite3.connect(tmp_path / "out" / "roi.db")
    frame = store.items_frame(db, result.run_id)
    names = ["alpha", "beta", "gamma"]
    pairs = task_pairs(frame, "fake", names)
    matrix = interference_matrix(frame, "fake", names)
    assert matrix.swaps[2] == [40, 0, 0]
    one_out = recommend_grouping(pilot.spec, "fake", pairs, {"gamma": ["swap_rate"]}, matrix, seed=0)
    assert one_out.mixed_tasks == ["alpha", "beta"] and one_out.single_tasks == ["gamma"]
    assert one_out.economics.mixed_tasks == ["alpha", "beta"]
    two_out = recommend_grouping(pilot.spec, "fake", pairs, {"gamma": ["x"], "beta": ["y"]}, matrix, seed=0)
    assert two_out.mixed_tasks == [] and two_out.single_tasks == names  # a group of one is no group
    assert two_out.economics.cost_saving.value == 0.0  # all single against all single
    assert two_out.all_mixed_economics.mixed_tasks == names
