"""Figures for people: money never in scientific notation or NaN, changes in signed points."""

from __future__ import annotations

import math

import pytest

from roi.formats import p_value, percent, points, usd, usd_per_1k


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.0, "$0.00"),
        (6.08e-05, "$0.000061"),
        (0.002972, "$0.0030"),
        (0.37, "$0.37"),
        (0.996, "$1.00"),
        (12.345, "$12.35"),
        (1234.5, "$1,234"),
        (-4101.4, "−$4,101"),
        (-0.0005, "−$0.00050"),
        (1e-12, "$0.0000000000010"),
        (None, "unknown"),
        (math.nan, "unknown"),
        (math.inf, "unknown"),
    ],
)
def test_usd_is_currency_never_scientific(value: float | None, shown: str) -> None:
    assert usd(value) == shown
    assert "e" not in usd(value).replace("unknown", "")


def test_per_thousand_items() -> None:
    assert usd_per_1k(6.08e-05) == "$0.061"
    assert usd_per_1k(None, "n/a") == "n/a"


def test_points_carry_one_sign_convention() -> None:
    assert points(-0.38) == "−38" and points(0.04) == "+4" and points(0.001) == "0" and points(None) == "n/a"
    assert percent(0.794) == "79%" and percent(None) == "n/a"


def test_p_values_are_never_scientific() -> None:
    assert p_value(1.82e-12) == "<0.001" and p_value(0.031) == "0.031" and p_value(1.0) == "1"
    assert p_value(None) == "n/a"
