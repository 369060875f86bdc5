"""Task grouping: the interference matrix and which tasks share a call."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from roi import store
from roi.economics import task_pairs
from roi.gates import PLACING
from roi.grouping import group_mask, interference_matrix, placements, recommend_grouping

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


@dataclass(frozen=True)
class Judged:
    gate: str
    status: str
    items_needed: int | None = None


def judged(accuracy: str, unparseable: str = "pass", swaps: str = "pass", needed: int | None = None) -> list[Judged]:
    return [
        Judged("items", "pass"),
        Judged("accuracy_drop", accuracy, needed if accuracy == "more_data" else None),
        Judged("unparseable_rate", unparseable, needed if unparseable == "more_data" else None),
        Judged("swap_rate", swaps),
    ]


def test_placements_read_only_conclusive_evidence() -> None:
    statuses = np.array(
        [
            [["pass", "pass", "pass"], ["pass", "fail", "pass"], ["pass", "more_data", "pass"]],
            [["pass", "pass", "pass"], ["more_data", "pass", "pass"], ["pass", "more_data", "fail"]],
        ]
    )
    placed = placements(statuses)
    assert placed.tolist() == [["may_share", "keep_single", "undecided"], ["may_share", "undecided", "keep_single"]]
    # a group needs two tasks that may share: the first pilot has one, so no group at all
    assert group_mask(placed).tolist() == [[False, False, False], [False, False, False]]
    assert group_mask(np.array(["may_share", "may_share", "undecided"])).tolist() == [True, True, False]


def test_failing_task_stays_single_and_two_are_needed(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, ("alpha", "beta", "gamma"))
    result = run_fake(pilot, tmp_path, gamma_takes_alphas_answer)
    db = sqlite3.connect(tmp_path / "out" / "roi.db")
    frame = store.items_frame(db, result.run_id)
    names = ["alpha", "beta", "gamma"]
    pairs = task_pairs(frame, "fake", names)
    matrix = interference_matrix(frame, "fake", names)
    assert matrix.swaps[2] == [40, 0, 0]
    gates = {"alpha": judged("pass"), "beta": judged("pass"), "gamma": judged("fail")}
    one_out = recommend_grouping(pilot.spec, "fake", pairs, gates, matrix, placing=PLACING, seed=0)
    assert one_out.mixed_tasks == ["alpha", "beta"] and one_out.single_tasks == ["gamma"]
    assert one_out.economics.mixed_tasks == ["alpha", "beta"]
    gamma = one_out.placements[2]
    assert (gamma.placement, gamma.failing_gates, gamma.swaps_from) == ("keep_single", ["accuracy_drop"], {"alpha": 40})
    # a stage-2 gate (swaps) never removes a task from the stage-1 plan
    swapping = {**gates, "gamma": judged("pass", swaps="fail")}
    assert recommend_grouping(pilot.spec, "fake", pairs, swapping, matrix, placing=PLACING, seed=0).mixed_tasks == names
    # undecided tasks are not grouped, and say what would settle them
    thin = {**gates, "beta": judged("more_data", unparseable="more_data", needed=120)}
    two_out = recommend_grouping(pilot.spec, "fake", pairs, thin, matrix, placing=PLACING, seed=0)
    assert two_out.mixed_tasks == [] and two_out.single_tasks == names  # a group of one is no group
    beta = two_out.placements[1]
    assert (beta.placement, beta.pending_gates, beta.items_needed) == (
        "undecided",
        ["accuracy_drop", "unparseable_rate"],
        120,
    )
    assert two_out.economics.cost_saving.value == 0.0  # all single against all single
    assert two_out.all_mixed_economics.mixed_tasks == names
