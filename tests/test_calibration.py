"""The decision's calibration, reduced to a few seconds: synthetic pilots with known truth through the real
gate functions (benchmarks/calibration.py; the full table, 10,000 pilots per row, is in BENCHMARKS.md).
Each bound allows three Monte Carlo standard errors."""

from __future__ import annotations

import math

import numpy as np

from benchmarks.calibration import LIMIT, accuracy_row, latency_row, money_row, one_harmful_row, rate_row

PILOTS = 2000


def slack(p: float, n: int = PILOTS) -> float:
    return 3 * math.sqrt(p * (1 - p) / n)


def test_accuracy_gate_grouping_and_items_needed() -> None:
    rng = np.random.default_rng(12)
    for n, p_single in ((60, 0.6), (300, 0.6), (120, 0.9)):
        boundary = accuracy_row(n, p_single, LIMIT, PILOTS, rng)
        assert boundary["pass"] <= 0.025 + slack(0.025)  # a true drop at the limit rarely passes
        assert boundary["admitted"] <= 0.05 + slack(0.05)  # ... and rarely joins a group
        twice = accuracy_row(n, p_single, 2 * LIMIT, PILOTS, rng)
        assert twice["pass"] <= 0.001 and twice["admitted"] <= 0.001
        harmless = accuracy_row(n, p_single, 0.0, PILOTS, rng)
        assert harmless["dropped"] <= 0.025 + slack(0.025)  # a harmless task is rarely kept single
        assert harmless["measured"] >= 0.75 - slack(0.75)  # "about N items" keeps its 80% promise
        if p_single == 0.6:  # enough discordant items for the interval to be near its nominal 95%
            for row in (boundary, twice, harmless):
                assert 0.94 - slack(0.94) <= row["cover"] <= 0.97 + slack(0.97)


def test_one_harmful_task_among_harmless_ones() -> None:
    """The realistic risk: one task truly at (or past) the limit beside harmless ones joins their group
    about as rarely as its own gate passes, and the harmless ones are rarely kept single."""
    rng = np.random.default_rng(16)
    for n, p_single in ((120, 0.6), (300, 0.9)):
        for drop in (LIMIT, 2 * LIMIT):
            row = one_harmful_row(n, p_single, drop, PILOTS, rng)
            assert row["admitted"] <= row["harm_pass"] <= 0.025 + slack(0.025)
            assert row["dropped"] <= 0.025 + slack(0.025)
    assert one_harmful_row(300, 0.9, 2 * LIMIT, PILOTS, rng)["grouped"] > 0.5  # the harmless ones still group


def test_failed_calls_gate() -> None:
    rng = np.random.default_rng(13)
    boundary = rate_row(120, 0.05, PILOTS, rng)
    assert boundary["pass"] <= 0.025 + slack(0.025)
    assert 0.94 - slack(0.94) <= boundary["cover"] <= 0.97 + slack(0.97)


def test_p95_latency_over_calls() -> None:
    rng = np.random.default_rng(14)
    for varied in (False, True):
        row = latency_row(120, varied, PILOTS, rng, bootstrap=0)
        assert row["pass"] <= 0.025 + slack(0.025)
        assert row["cover_upper"] >= 0.975 - slack(0.975)
    assert latency_row(30, False, 200, rng, bootstrap=0)["bounded"] == 0.0  # 30 calls cannot bound a p95


def test_money_over_calls() -> None:
    assert money_row(30, 200, np.random.default_rng(17), resamples=200)["boundary_pass"] == 0.0  # passes from 60
    row = money_row(120, 1000, np.random.default_rng(15), resamples=500)
    assert row["boundary_pass"] <= 0.025 + slack(0.025, 1000)
    assert 0.94 - slack(0.94, 1000) <= row["cover_saving"] <= 0.97 + slack(0.97, 1000)
    # MOVER over per-task Newcombe and Wilson intervals: never too narrow (conservative below 120 calls)
    assert row["cover_net"] >= 0.94 - slack(0.94, 1000)
    # garbled calls (every item of a mixed call wrong) tie the tasks of a call: MOVER, with correlations
    # from the resampled calls, still holds
    garbled = money_row(120, 1000, np.random.default_rng(18), resamples=500, garble=0.05)
    assert garbled["cover_net"] >= 0.94 - slack(0.94, 1000)
