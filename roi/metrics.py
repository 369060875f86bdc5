"""Figures of a run from the store: per task x mode x model, and per model x mode.

Attribution rules (also in the README):
- latency per item is the wall time of the call that answered it: in a mixed call every query
  waits for the whole call, as it would in production;
- tokens and cost per item are the call's tokens and cost divided by the items it answered;
- cost is None (unknown) when any call it sums has no known cost; it is never shown as 0;
- a mode's compute seconds are the machine time its calls took where the backend measured it (a
  local engine: what the model is paid by), else the sum of its calls' latencies (API models, where
  calls overlap); items per second divide the answered items by those seconds.
- an item of a failed call (stored with no answer) counts as wrong in its mode's accuracy, and is left
  out of the unparseable, swap, latency and cost figures, which describe the calls that answered; the
  failed calls themselves are counted per model and mode. In the paired comparison an item of a failed
  mixed call counts as wrong, but an item whose *single* call failed is left out (and counted): there
  is no single answer to compare with, and counting it wrong would credit mixing with single's failures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from roi.stats import PairedDiff, Rate, paired_difference, percentile, wilson


@dataclass(frozen=True)
class CellSummary:
    model: str
    task: str
    mode: str
    accuracy: Rate
    unparseable: Rate
    swaps: Rate
    other_task_space: Rate
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_max_s: float | None
    prompt_tokens_per_item: float | None
    output_tokens_per_item: float | None
    cost_per_item_usd: float | None
    vs_single: PairedDiff | None  # mixed minus single on the same items (mixed rows only)
    single_failed: int = 0  # items left out of vs_single because their single call failed


@dataclass(frozen=True)
class ModeSummary:
    model: str
    mode: str
    calls: int
    failed_calls: int
    items: int  # items asked, those of failed calls included
    answered_items: int  # items whose call answered: what tokens, compute and cost were spent on
    compute_s: float  # machine time of the calls where measured (`compute_basis`), else their latencies
    items_per_s: float | None  # answered items per compute second
    prompt_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    retries: int = 0  # retried attempts (API rate limits, 5xx, timeouts), failed calls included
    backoff_s: float = 0.0  # time spent waiting between retries, kept out of latency
    compute_basis: str = "latency"  # "machine": measured machine time; "latency": sum of call latencies
    failed: Rate = field(default_factory=lambda: wilson(0, 0))  # failed calls / calls, Wilson 95%


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    pilot: str
    item_limit: int | None
    cells: list[CellSummary]
    modes: list[ModeSummary]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_latencies(items: pd.DataFrame) -> np.ndarray:
    """Latencies measured in this run: a reused call's latency is an earlier run's."""
    live = items[items["reused"] == 0]
    return live["latency_s"].to_numpy()


def compute_seconds(ok_calls: pd.DataFrame) -> tuple[float, bool]:
    """Seconds the finished calls took, and whether that is measured machine time (every call has it:
    a local engine) rather than the sum of their latencies."""
    machine = "machine_s" in ok_calls and len(ok_calls) > 0 and bool(ok_calls["machine_s"].notna().all())
    return float(ok_calls["machine_s" if machine else "latency_s"].sum()), machine


def _known_sum(series: pd.Series) -> float | None:
    return None if series.isna().any() or series.empty else float(series.sum())


def _per_item(frame: pd.DataFrame, column: str) -> float | None:
    values = frame[column] / frame["n_items"]
    return None if values.isna().any() or values.empty else float(values.mean())


def answered(items: pd.DataFrame) -> pd.DataFrame:
    """Items whose call did not fail."""
    return items[items["error"].isna()] if "error" in items else items


def _cell(items: pd.DataFrame, single: pd.DataFrame | None, model: str, task: str, mode: str) -> CellSummary:
    ok = answered(items)
    n = len(ok)
    lat = live_latencies(ok)
    vs_single, single_failed = None, 0
    if mode != "single" and single is not None:
        asked = single.merge(items[["item_id"]], on="item_id")
        paired = answered(asked).merge(items, on="item_id", suffixes=("_single", "_mixed"))
        vs_single = paired_difference(paired["correct_single"].to_numpy(), paired["correct_mixed"].to_numpy())
        single_failed = len(asked) - len(paired)
    return CellSummary(
        model=model,
        task=task,
        mode=mode,
        accuracy=wilson(int(items["correct"].sum()), len(items)),
        unparseable=wilson(int((ok["parsed"] == 0).sum()), n),
        swaps=wilson(int(ok["swap_with"].notna().sum()), n),
        other_task_space=wilson(int(ok["other_task_space"].notna().sum()), n),
        latency_p50_s=percentile(lat, 50),
        latency_p95_s=percentile(lat, 95),
        latency_max_s=float(lat.max()) if lat.size else None,
        prompt_tokens_per_item=_per_item(ok, "prompt_tokens"),
        output_tokens_per_item=_per_item(ok, "output_tokens"),
        cost_per_item_usd=_per_item(ok, "cost_usd"),
        vs_single=vs_single,
        single_failed=single_failed,
    )


def _mode(calls: pd.DataFrame, items: pd.DataFrame, model: str, mode: str) -> ModeSummary:
    ok = calls[calls["error"].isna()]
    compute_s, machine = compute_seconds(ok)
    answered_items = int(ok["n_items"].sum())
    lat = live_latencies(answered(items))
    failed = int(calls["error"].notna().sum())
    tokens = {c: _known_sum(ok[c]) for c in ("prompt_tokens", "output_tokens")}
    return ModeSummary(
        model=model,
        mode=mode,
        calls=len(calls),
        failed_calls=failed,
        items=len(items),
        answered_items=answered_items,
        compute_s=compute_s,
        items_per_s=answered_items / compute_s if compute_s > 0 else None,
        prompt_tokens=None if tokens["prompt_tokens"] is None else int(tokens["prompt_tokens"]),
        output_tokens=None if tokens["output_tokens"] is None else int(tokens["output_tokens"]),
        cost_usd=_known_sum(ok["cost_usd"]),
        latency_p50_s=percentile(lat, 50),
        latency_p95_s=percentile(lat, 95),
        retries=int(calls["retries"].sum()),
        backoff_s=float(calls["backoff_s"].sum()),
        compute_basis="machine" if machine else "latency",
        failed=wilson(failed, len(calls)),
    )


def summarize(run_id: str, pilot: str, item_limit: int | None, items: pd.DataFrame, calls: pd.DataFrame) -> RunSummary:
    """All figures of the end table from the store's item and call frames."""
    cells: list[CellSummary] = []
    modes: list[ModeSummary] = []
    for (model, mode), group in calls.groupby(["model", "mode"], sort=False):
        modes.append(_mode(group, items[(items["model"] == model) & (items["mode"] == mode)], str(model), str(mode)))
    for (model, task, mode), group in items.groupby(["model", "task", "mode"], sort=False):
        single = items[(items["model"] == model) & (items["task"] == task) & (items["mode"] == "single")]
        cells.append(_cell(group, single if len(single) else None, str(model), str(task), str(mode)))
    cells.sort(key=lambda c: (c.model, c.task, c.mode != "single"))
    return RunSummary(run_id, pilot, item_limit, cells, modes)
