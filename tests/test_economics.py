"""Economics by hand: cost per item, monthly cost, error cost, net benefit, payback, ROI, and the paired
bootstrap's intervals; unknown cost stays unknown."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from roi.economics import Estimate, TaskPairs, payback, plan_economics, roi_over_horizon
from roi.pilot import Pilot

Z = 1.959963984540054


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    p, z2 = k / n, Z * Z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def pilot(investment: float = 600.0, volumes: tuple[int, int] = (1000, 3000)) -> Pilot:
    task = {
        "instruction": "x",
        "examples": [{"input": "a", "output": "b"}],
        "eval": [{"input": "a", "output": "b"}],
        "scorer": "exact",
    }
    return Pilot.model_validate(
        {
            "pilot": "econ",
            "business_unit": "u",
            "owner": "o",
            "models": [{"name": "m", "backend": "transformers", "model": "embedded", "cost": {"usd_per_hour": 1}}],
            "tasks": [
                {**task, "name": "t1", "monthly_volume": volumes[0], "cost_per_error_usd": 2.0},
                {**task, "name": "t2", "monthly_volume": volumes[1], "cost_per_error_usd": 0.5},
            ],
            "modes": {"single": {"shots": 1}, "mixed": {"shots_per_task": 1}},
            "economics": {"pilot_investment_usd": investment, "horizon_months": 12},
        }
    )


def pairs(n: int = 10, unknown: bool = False) -> dict[str, TaskPairs]:
    ids = [str(i) for i in range(n)]
    ones = np.ones(n)
    t1_mixed = ones.copy()
    t1_mixed[:2] = 0  # two of ten items wrong in mixed mode
    cost_single = np.full(n, np.nan if unknown else 0.01)
    return {
        "t1": TaskPairs("t1", ids, ones, t1_mixed, cost_single, np.full(n, 0.004)),
        "t2": TaskPairs("t2", ids, ones, ones.copy(), cost_single.copy(), np.full(n, 0.004)),
    }


def test_plan_figures_by_hand() -> None:
    p = pairs()
    e = plan_economics(pilot(), "m", p, ["t1", "t2"], seed=1)
    # 1,000 mixed calls a month carry t1 and t2 (t1 has no more); t2's other 2,000 items go single
    assert [(x.tasks, x.calls_per_month, x.single_per_month) for x in e.pairing] == [
        (["t1", "t2"], 1000, {"t1": 0, "t2": 2000})
    ]
    # compute: single 4000 x $0.01 = $40; plan 2000 mixed items x $0.004 + 2000 single x $0.01 = $28
    assert e.monthly_compute_single_usd.value == pytest.approx(40.0)
    assert e.monthly_compute_plan_usd.value == pytest.approx(28.0)
    assert e.cost_saving.value == pytest.approx(0.3)
    # errors: single none; mixed t1 20% x 1000 x $2 = $400
    assert e.monthly_error_plan_usd.value == pytest.approx(400.0)
    # net = 40 - (28 + 400) = -388 a month: never pays back, ROI = (-388 x 12 - 600) / 600
    assert e.net_monthly_benefit_usd.value == pytest.approx(-388.0)
    assert e.payback_months.value is None
    assert e.roi.value == pytest.approx((-388 * 12 - 600) / 600)
    # the net's interval, by MOVER: the compute part has no spread (constant costs); t1's accuracy change,
    # mixed 8/10 against single 10/10 on the same items, takes Newcombe's interval (a margin is empty, so
    # phi = 0: the square-and-add of the Wilson intervals' distances), x 1,000 items x $2; t2 is right in
    # both modes, its change 0 +- z^2 / (10 + z^2), on the third of its 3,000 items mixing carries, x $0.5.
    # Neither part varies with the other over the resamples (t2 not at all): they add in quadrature.
    (l_single, _), (l_mixed, u_mixed) = wilson_by_hand(10, 10), wilson_by_hand(8, 10)
    # Newcombe: the drop's upper end is 0.2 + sqrt((u_single - 1)^2 + (0.8 - l_mixed)^2), single's u = 1;
    # its lower end is 0.2 - sqrt((1 - l_single)^2 + (u_mixed - 0.8)^2)
    t1_worse = math.hypot(0.0, 0.8 - l_mixed)
    t1_better = math.hypot(1 - l_single, u_mixed - 0.8)
    t2 = Z * Z / (10 + Z * Z) * 1000 * 0.5
    net = e.net_monthly_benefit_usd
    assert net.low == pytest.approx(-388 - math.hypot(2000 * t1_worse, t2))
    assert net.high == pytest.approx(-388 + math.hypot(2000 * t1_better, t2))
    # the error cost of the plan adds t1's mixed Wilson interval and t2's (single and mixed) in quadrature
    zero_errors = wilson_by_hand(0, 10)[1]
    low, high = wilson_by_hand(2, 10)
    parts_high = [2000 * (high - 0.2), 1000 * zero_errors, 500 * zero_errors]
    assert e.monthly_error_plan_usd.high == pytest.approx(400 + math.sqrt(sum(x * x for x in parts_high)))
    assert e.monthly_error_plan_usd.low == pytest.approx(400 - 2000 * (0.2 - low))


def test_mixed_calls_are_limited_by_the_smaller_volume() -> None:
    """30,000 and 1,000 items a month: at most 1,000 calls can carry both tasks."""
    p = pairs()
    e = plan_economics(pilot(volumes=(30_000, 1_000)), "m", p, ["t1", "t2"], seed=1)
    (pairing,) = e.pairing
    assert pairing.calls_per_month == 1_000 and pairing.single_per_month == {"t1": 29_000, "t2": 0}
    # 2,000 items in 1,000 mixed calls at $0.004 each + t1's other 29,000 single at $0.01 = $298, not
    # 31,000 mixed items at $0.004 = $124
    assert e.monthly_compute_plan_usd.value == pytest.approx(2_000 * 0.004 + 29_000 * 0.01)
    assert e.monthly_compute_single_usd.value == pytest.approx(31_000 * 0.01)
    # t1's errors: only its 1,000 mixed items risk the 20% error rate: 1000 x 20% x $2
    assert e.monthly_error_plan_usd.value == pytest.approx(400.0)


def test_no_volume_means_no_projection_named() -> None:
    spec = pilot().model_copy(
        update={"tasks": [pilot().tasks[0].model_copy(update={"monthly_volume": None}), pilot().tasks[1]]}
    )
    e = plan_economics(spec, "m", pairs(), ["t2"], seed=1)
    assert e.volume_issue == "missing_volume" and e.tasks_without_volume == ["t1"]
    assert e.net_monthly_benefit_usd == e.monthly_compute_plan_usd == e.roi == Estimate(None, None, None)
    assert e.cost_saving.value is not None  # a per-item figure, equal weights: the cost gate can still judge
    zero = plan_economics(pilot(volumes=(0, 0)), "m", pairs(), ["t2"], seed=1)
    assert zero.volume_issue == "zero_volume" and zero.roi.value is None  # not a silent ROI of -100%
    # the per-item saving still prices the mixing, with equal weights, as without volumes
    assert zero.cost_saving.value == pytest.approx(0.3) == e.cost_saving.value  # t2 saves 60% of half
    both = plan_economics(pilot(volumes=(0, 0)), "m", pairs(), ["t1", "t2"], seed=1)
    assert both.cost_saving.value == pytest.approx(0.6)  # 0.004 against 0.01 per item, not 0 for want of pairs


def test_zero_prices_and_missing_pairs_give_their_own_reasons() -> None:
    free = {t: replace(x, cost_single=np.zeros(x.n), cost_mixed=np.zeros(x.n)) for t, x in pairs().items()}
    e = plan_economics(pilot(), "m", free, ["t1", "t2"], seed=1)
    assert e.cost_issue == "zero_cost" and e.cost_saving.value is None
    assert e.monthly_compute_plan_usd.value == 0.0  # a true $0, not unknown
    lonely = {**pairs(), "t2": pairs(n=0)["t2"]}
    e = plan_economics(pilot(), "m", lonely, ["t1", "t2"], seed=1)
    assert e.cost_issue == "no_pairs" and e.tasks_without_pairs == ["t2"] and not e.cost_known
    assert plan_economics(pilot(), "m", pairs(unknown=True), ["t1"], seed=1).cost_issue == "no_cost"


def test_plan_keeping_a_task_single_and_pairing() -> None:
    p = pairs()
    e = plan_economics(pilot(), "m", p, ["t2"], seed=1)
    # t1 stays single ($10 a month, no errors), t2 mixed: 3000 x 0.004 = $12 instead of $30 -> saves $18
    assert e.monthly_compute_plan_usd.value == pytest.approx(10.0 + 12.0)
    assert e.net_monthly_benefit_usd.value == pytest.approx(18.0)
    assert e.monthly_compute_saving_usd == Estimate(pytest.approx(18.0), pytest.approx(18.0), pytest.approx(18.0))
    # costs are constant per item, so the compute saving has no width; t2 is right in both modes on all 10
    # items, which does not show that mixing never errs: Newcombe's interval of its accuracy change is
    # +- z^2 / (10 + z^2) (Wilson's distance at 10/10 in each mode, phi = 0), on its 3,000 items x $0.5
    width = Z * Z / (10 + Z * Z) * 3000 * 0.5
    assert (e.net_monthly_benefit_usd.low, e.net_monthly_benefit_usd.high) == pytest.approx((18 - width, 18 + width))
    assert e.payback_months.value == pytest.approx(600 / 18)
    assert e.roi.value == pytest.approx((18 * 12 - 600) / 600)
    # volume-weighted cost per item: (1000 x 0.01 + 3000 x 0.004) / 4000
    assert e.cost_per_item_plan_usd.value == pytest.approx(22 / 4000)


def test_unknown_cost_is_unknown_not_zero() -> None:
    p = pairs(unknown=True)
    e = plan_economics(pilot(), "m", p, ["t1", "t2"], seed=1)
    assert not e.cost_known
    assert e.cost_saving == Estimate(None, None, None)
    assert e.net_monthly_benefit_usd.value is None and e.payback_months.value is None and e.roi.value is None
    assert e.monthly_error_plan_usd.value == pytest.approx(400.0)  # error cost does not need prices


def uneven_pairs(n: int = 11) -> dict[str, TaskPairs]:
    """Single calls costing $0.001 x 1, 4, 9, ..., 121 (10th percentile $0.004, 90th $0.100: a spread of
    25); mixed $0.004 each."""
    climbing = 0.001 * np.arange(1, n + 1) ** 2
    return {t: replace(x, cost_single=climbing.copy()) for t, x in pairs(n).items()}


def test_cost_spread_is_the_most_uneven_task_and_mode() -> None:
    steady = plan_economics(pilot(), "m", pairs(11), ["t1", "t2"], seed=1)
    assert steady.cost_spread == pytest.approx(1.0)  # every call costs the same in either mode
    e = plan_economics(pilot(), "m", uneven_pairs(), ["t1", "t2"], seed=1)
    assert e.cost_spread == pytest.approx(25.0)  # single calls; the mixed calls all cost $0.004
    assert plan_economics(pilot(), "m", pairs(unknown=True), ["t1", "t2"], seed=1).cost_spread is None


def test_cost_spread_leaves_out_volumes_and_failed_calls() -> None:
    """Tasks in calls of their own with very different volumes, and failed mixed calls (cost 0), are not
    uneven costs: every call that answered costs the same."""
    p = pairs(20)
    apart = {"t1": p["t1"], "t2": replace(p["t2"], clusters=[f"other{i}" for i in range(20)])}
    assert plan_economics(pilot(volumes=(1000, 9000)), "m", apart, ["t1", "t2"], seed=1).cost_spread == 1.0
    failed = np.arange(20) < 5  # a quarter of the mixed calls failed: their cost is 0 in the sums
    broken = {t: replace(x, failed_mixed=failed) for t, x in p.items()}
    assert plan_economics(pilot(), "m", broken, ["t1", "t2"], seed=1).cost_spread == 1.0


def test_payback_and_roi_take_opposite_ends() -> None:
    net = Estimate(100.0, -50.0, 200.0)
    assert payback(net, 1000.0) == Estimate(10.0, 5.0, None)  # the low end never pays back
    assert roi_over_horizon(net, 1000.0, 12) == Estimate(0.2, -1.6, 1.4)
    assert roi_over_horizon(net, 0.0, 12).value is None  # nothing invested: ROI undefined, not infinite
