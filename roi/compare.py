"""`roi compare RUN_A RUN_B`: what changed between two runs, per model x task x mode.

Accuracy is compared only on the items both runs answered (same item id, input and gold answer), as
paired outcomes: exact McNemar on the discordant items and Newcombe's paired score interval of the
difference (B minus A; see roi/stats.py). Two runs of one pilot answer the same items, so an unpaired test would waste
that pairing and can miss a real change. Latency compares live calls only (a reused call's latency is
an earlier run's); cost per item is None (unknown) when either run lacks a price.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from roi import store
from roi.errors import Problem, RoiError
from roi.fingerprint import SettingsDiff, settings_diff
from roi.metrics import live_latencies
from roi.stats import PairedDiff, Rate, paired_difference, percentile, wilson

CELL = ["model", "task", "mode"]
ITEM = ["item_id", "input", "gold"]


@dataclass(frozen=True)
class CellChange:
    model: str
    task: str
    mode: str
    shared: int  # items answered in both runs (the pairs)
    only_a: int  # items only run A answered
    only_b: int
    accuracy_a: Rate  # on the shared items
    accuracy_b: Rate
    diff: PairedDiff  # B minus A on the shared items
    latency_p50_a_s: float | None  # live calls only
    latency_p50_b_s: float | None
    cost_per_item_a_usd: float | None
    cost_per_item_b_usd: float | None

    @property
    def worse(self) -> bool:
        """B is worse than A beyond chance: the whole paired interval is below zero."""
        return self.diff.high is not None and self.diff.high < 0


@dataclass(frozen=True)
class Comparison:
    run_a: str
    run_b: str
    pilot_a: str
    pilot_b: str
    cells: list[CellChange]
    missing: list[str]  # cells present in only one run, e.g. "gemma/capital/mixed only in A"
    settings: SettingsDiff | None = None  # the pilot settings of A against B's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cost_per_item(frame: pd.DataFrame) -> float | None:
    values = frame["cost_usd"] / frame["n_items"]
    return None if values.empty or values.isna().any() else float(values.mean())


def _cell(key: tuple[str, ...], a: pd.DataFrame, b: pd.DataFrame) -> CellChange:
    pairs = a.merge(b, on=ITEM, suffixes=("_a", "_b"))
    ca = pairs["correct_a"].to_numpy(dtype=float)
    cb = pairs["correct_b"].to_numpy(dtype=float)
    n = len(pairs)
    return CellChange(
        model=key[0],
        task=key[1],
        mode=key[2],
        shared=n,
        only_a=len(a) - n,
        only_b=len(b) - n,
        accuracy_a=wilson(int(ca.sum()), n),
        accuracy_b=wilson(int(cb.sum()), n),
        diff=paired_difference(ca, cb),
        latency_p50_a_s=percentile(live_latencies(a), 50),
        latency_p50_b_s=percentile(live_latencies(b), 50),
        cost_per_item_a_usd=_cost_per_item(a),
        cost_per_item_b_usd=_cost_per_item(b),
    )


def _pilot_of(db: sqlite3.Connection, run_id: str, name: str) -> str:
    row = store.get_run(db, run_id)
    if row is None:
        raise RoiError([Problem(f"no run {run_id!r} in the store", None, None, name)])
    return str(row["pilot"])


def _pilot_order(db: sqlite3.Connection, run_id: str) -> Callable[[tuple[str, ...]], tuple[int, int, int, str]]:
    """Sort key of a (model, task, mode) cell: models and tasks in the pilot's order, single first."""
    row = store.get_run(db, run_id)
    spec = json.loads(row["pilot_json"]) if row is not None else {}
    models = {m["name"]: i for i, m in enumerate(spec.get("models", []))}
    tasks = {t["name"]: i for i, t in enumerate(spec.get("tasks", []))}
    return lambda k: (models.get(k[0], len(models)), tasks.get(k[1], len(tasks)), k[2] != "single", "/".join(k))


def compare_runs(db: sqlite3.Connection, run_a: str, run_b: str) -> Comparison:
    """Per model x task x mode changes from run A to run B, paired on the items both answered; models and
    tasks in the order of run B's pilot."""
    pilot_a, pilot_b = _pilot_of(db, run_a, "RUN_A"), _pilot_of(db, run_b, "RUN_B")
    items_a, items_b = store.items_frame(db, run_a), store.items_frame(db, run_b)
    groups_a = {tuple(map(str, k)): g for k, g in items_a.groupby(CELL, sort=True)}
    groups_b = {tuple(map(str, k)): g for k, g in items_b.groupby(CELL, sort=True)}
    order = _pilot_order(db, run_b)
    cells = [_cell(k, groups_a[k], groups_b[k]) for k in sorted(groups_a.keys() & groups_b.keys(), key=order)]
    missing = [f"{'/'.join(k)} only in A" for k in sorted(groups_a.keys() - groups_b.keys())]
    missing += [f"{'/'.join(k)} only in B" for k in sorted(groups_b.keys() - groups_a.keys())]
    settings = settings_diff(
        run_a, store.run_settings(store.get_run(db, run_a)), store.run_settings(store.get_run(db, run_b))
    )
    return Comparison(run_a, run_b, pilot_a, pilot_b, cells, missing, settings)
