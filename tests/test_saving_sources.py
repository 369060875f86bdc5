"""Where the saving comes from, by hand: calls, tokens, shared prefixes, compute and cost per item
answered."""

from __future__ import annotations

import pandas as pd
import pytest

from roi.metrics import ModeSummary, summarize
from roi.saving_sources import saving_sources


def test_saving_sources_from_calls() -> None:
    prefix_s, prefix_m = "INSTRUCTION AND EIGHT EXAMPLES " * 3, "ALL TASKS' EXAMPLES " * 3
    calls = pd.DataFrame(
        {
            "call_id": ["m/single:t1:1", "m/single:t1:2", "m/mixed:g0:0", "m/mixed:g0:1"],
            "model": ["m"] * 4,
            "mode": ["single", "single", "mixed", "mixed"],
            "prompt": [prefix_s + "q1", prefix_s + "q2", prefix_m + "q1 q2", prefix_m + "q3 q4"],
            "prompt_tokens": [100, 100, 120, 120],
            "cached_prompt_tokens": [None] * 4,
            "output_tokens": [2, 2, 10, 10],
            "latency_s": [1.0, 1.0, 3.0, 3.0],
            "cost_usd": [0.1, 0.1, 0.3, 0.3],
            "n_items": [1, 1, 2, 2],
            "error": [None] * 4,
        }
    )

    def mode(name: str, prompt: int, output: int, compute_s: float, cost: float) -> ModeSummary:
        return ModeSummary(
            model="m", mode=name, calls=2, failed_calls=0, items=2 if name == "single" else 4,
            answered_items=2 if name == "single" else 4, compute_s=compute_s,
            items_per_s=None, prompt_tokens=prompt, output_tokens=output, cost_usd=cost, latency_p50_s=None,
            latency_p95_s=None,
        )  # fmt: skip

    single = saving_sources(mode("single", 200, 4, 2.0, 0.2), calls, "m", "single")
    mixed = saving_sources(mode("mixed", 240, 20, 6.0, 0.6), calls, "m", "mixed")
    assert single.calls_per_item == 1.0 and mixed.calls_per_item == 0.5
    assert single.prompt_tokens_per_item == 100 and mixed.prompt_tokens_per_item == 60
    share = (len(prefix_s) + 1) / (len(prefix_s) + 2)  # "q" is shared too: the estimate is by characters
    assert single.cacheable_prompt_share == pytest.approx(share)
    assert single.uncached_prompt_tokens_per_item == pytest.approx(100 * (1 - share))
    assert single.cached_prompt_tokens_reported is None
    assert mixed.compute_s_per_item == 1.5 and mixed.cost_per_item_usd == pytest.approx(0.15)
    assert mixed.latency_s_per_call == 3.0  # every item of a call waits for all of it
    assert saving_sources(None, calls, "m", "mixed").calls_per_item is None  # a mode without calls


def test_per_item_figures_divide_by_the_items_that_answered() -> None:
    """Three mixed calls of two items, one failed: tokens, seconds and cost were spent on 4 items, not 6,
    so cost per item stays usd_per_hour / 3600 / items/s."""
    calls = pd.DataFrame(
        {
            "call_id": [f"m/mixed:g0:{i}" for i in range(3)],
            "model": ["m"] * 3,
            "mode": ["mixed"] * 3,
            "prompt": ["P q1 q2", "P q3 q4", "P q5 q6"],
            "prompt_tokens": [40, 40, None],
            "cached_prompt_tokens": [None] * 3,
            "output_tokens": [6, 6, None],
            "latency_s": [2.0, 2.0, 0.5],
            "machine_s": [1.0, 1.0, None],
            "cost_usd": [0.001, 0.001, None],  # $3.60 an hour x 1 s
            "n_items": [2, 2, 2],
            "retries": [0, 0, 2],
            "backoff_s": [0.0, 0.0, 1.0],
            "error": [None, None, "server error"],
        }
    )
    items = calls.loc[calls.index.repeat(2)].reset_index(drop=True)
    items = items.assign(
        task=["a", "b"] * 3, item_id=["1", "1", "2", "2", "3", "3"], correct=[1, 1, 1, 0, 0, 0],
        parsed=[1, 1, 1, 1, 0, 0], swap_with=None, other_task_space=None, reused=0,
    )  # fmt: skip
    (mode,) = summarize("r", "p", None, items, calls).modes
    assert (mode.items, mode.answered_items, mode.failed_calls) == (6, 4, 1)
    assert mode.items_per_s == pytest.approx(4 / 2.0)
    s = saving_sources(mode, calls, "m", "mixed")
    assert s.compute_s_per_item == pytest.approx(0.5) and s.prompt_tokens_per_item == pytest.approx(20)
    assert s.cost_per_item_usd == pytest.approx(3.6 / 3600 / mode.items_per_s)
    assert s.calls_per_item == pytest.approx(2 / 4)  # the calls that answered, per item they answered
