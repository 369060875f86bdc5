"""Problems as a person reads them: where, what, and the same warning for several places said once."""

from __future__ import annotations

from roi.errors import Problem, render_together


def volume(index: int, line: int, file: str = "p.yaml") -> Problem:
    return Problem("not set", file, line, f"tasks[{index}].monthly_volume", "no-monthly-volume")


def test_warnings_saying_the_same_thing_share_one_line() -> None:
    other = Problem("full price", "p.yaml", 30, "models[0].price", "batch-without-discount")
    assert render_together([volume(0, 16), other, volume(1, 21), volume(2, 26, "q.yaml")]) == [
        "p.yaml:16 tasks[0].monthly_volume, :21 tasks[1].monthly_volume, q.yaml:26 tasks[2].monthly_volume: "
        "not set [no-monthly-volume]",
        "p.yaml:30 models[0].price: full price [batch-without-discount]",
    ]


def test_a_lone_or_unplaced_problem_renders_as_itself() -> None:
    unplaced = Problem("not set", name="no-monthly-volume")
    assert render_together([volume(0, 16)]) == [volume(0, 16).render()]
    assert render_together([volume(0, 16), unplaced]) == [volume(0, 16).render(), "not set [no-monthly-volume]"]


def test_a_place_drops_its_file_only_after_a_place_in_the_same_file() -> None:
    p, q, bak = volume(0, 16), volume(1, 26, "q.yaml"), volume(2, 30, "p.yaml.bak")
    no_line = Problem("not set", "p.yaml", None, "tasks[3].monthly_volume", "no-monthly-volume")
    assert render_together([p, q, volume(4, 40), bak, no_line]) == [
        "p.yaml:16 tasks[0].monthly_volume, q.yaml:26 tasks[1].monthly_volume, p.yaml:40 tasks[4].monthly_volume, "
        "p.yaml.bak:30 tasks[2].monthly_volume, p.yaml tasks[3].monthly_volume: not set [no-monthly-volume]"
    ]
