"""The probe's report section: the calibration chart, the table and the plain-language reading for
managers, from the run's probe figures (roi/probe/figures.py computes them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from roi.probe.figures import Mean, MixtureFigures, TaskPoint
from roi.report.charts import Canvas
from roi.report.i18n import words as section_words


def report_section(figs: Sequence[MixtureFigures], lang: str) -> dict[str, Any] | None:
    """Plain data for templates/sections/probe.html.j2 (None when the run has no probe figures)."""
    if not figs:
        return None
    words = section_words(lang, "probe")
    sentences = [_sentence(f, words) for f in figs if sum(t.share > 0 for t in f.tasks) >= 2]
    numbers = {(i, t.task): n for n, (i, t) in enumerate(chart_points(figs), 1)}
    table = [
        {"number": numbers.get((i, t.task), ""), "model": f.model, "mixture": f.mixture, "task": t.task,
         "share": f"{t.share:.2f}", "p": _fmt(t.probability), "kl": _fmt(f.kl),
         "kl_renormalised": _fmt(f.kl_renormalised), "n": f.prompts, "method": _method(f, words)}
        for i, f in enumerate(figs) for t in f.tasks
    ]  # fmt: skip
    return {
        "intro": words["intro"],
        "sentences": sentences,
        "rows": table,
        "note": words["note"],
        "estimate_note": words["estimate_note"] if any(f.estimate for f in figs) else None,
        "figures": [_plain(f) for f in figs],
        "charts": {"calibration": calibration_chart(figs, words)},
    }


def _method(f: MixtureFigures, words: dict[str, str]) -> str:
    label = " + ".join(words.get(f"method_{m}", m) for m in f.method.split("+"))
    return label + (words["bounds"].format(n=f.upper_bounds) if f.upper_bounds else "")


def _fmt(m: Mean) -> str:
    return "n/a" if m.value is None else f"{m.value:.3f} [{m.low:.3f}, {m.high:.3f}]"


def _plain(f: MixtureFigures) -> dict[str, Any]:
    return asdict(f)


def _sentence(f: MixtureFigures, words: dict[str, str]) -> str:
    answers = ", ".join(
        words["answer"].format(task=t.task, p=f"{t.probability.value or 0:.0%}", share=f"{t.share:.0%}")
        for t in f.tasks
        if t.share > 0
    )
    prefix = words["estimate"] if f.estimate else ""
    return prefix + words["point"].format(
        mixture=f.mixture, answers=answers, k=f.beam_width, all_in=f.all_in_beam.k, n=f.all_in_beam.n,
        leftover=f"{f.leftover.value or 0:.0%}",
    )  # fmt: skip


def calibration_chart(figs: Sequence[MixtureFigures], words: dict[str, str]) -> Any:
    """Share (x) vs mean probability (y) on 0..1, one numbered marker per task and mixture (the numbers
    are keyed in the table under the chart: names would pile up near the origin, where minority and
    absent tasks sit), interval whiskers, the diagonal drawn."""
    size, left, top = 420, 60, 30
    c = Canvas(words["title"], width=left + size + 40, height=top + size + 50)

    def sx(v: float) -> float:
        return left + v * size

    def sy(v: float) -> float:
        return top + (1 - v) * size

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        c.line(sx(tick), sy(0), sx(tick), sy(1), "grid")
        c.line(sx(0), sy(tick), sx(1), sy(tick), "grid")
        c.text(sx(tick), sy(0) + 14, f"{tick:.2f}", "tick", "middle")
        c.text(sx(0) - 6, sy(tick) + 4, f"{tick:.2f}", "tick", "end")
    c.line(sx(0), sy(0), sx(1), sy(1), "limit")  # the diagonal: probability = share
    c.text(sx(0.5), sy(0) + 32, words["x"], "tick", "middle")
    c.text(left - 44, sy(0.5), words["y"], "tick", "middle", rotate=-90)
    placed: list[tuple[float, float]] = []
    for number, (i, t) in enumerate(chart_points(figs), 1):
        p = t.probability
        assert p.value is not None and p.low is not None and p.high is not None
        c.line(sx(t.share), sy(p.low), sx(t.share), sy(p.high), "axis")
        c.rect(sx(t.share) - 4, sy(p.value) - 4, 8, 8, f"s{i % 2}")
        x, y = _free_spot(placed, sx(t.share) + 7, sy(p.value) + 4, len(str(number)) * 7.0, (sy(1) + 10, sy(0) - 3))
        if abs(y - sy(p.value) - 4) > 6:  # moved off its marker: a leader line says whose number it is
            c.line(sx(t.share) + 4, sy(p.value), x - 2, y - 4, "axis")
        c.text(x, y, str(number), "tick probe-label")
    return c


def chart_points(figs: Sequence[MixtureFigures]) -> list[tuple[int, TaskPoint]]:
    """(mixture index, point) for every point the chart draws, in the order of its numbers."""
    return [(i, t) for i, f in enumerate(figs) for t in f.tasks if t.probability.value is not None]


def _free_spot(
    placed: list[tuple[float, float]], x: float, y: float, width: float, bounds: tuple[float, float]
) -> tuple[float, float]:
    """The first spot right of (x, y), then stepping up and down a line at a time (within `bounds`, so
    labels stay above the x axis's ticks), whose label box overlaps no label placed before; records it."""
    line = 14.0  # an 11px label's line box in Chromium (tests/test_probe_section.py measures it)
    for step in range(60):
        dy = line * ((step + 1) // 2) * (-1 if step % 2 else 1)
        ty = min(max(y + dy, bounds[0]), bounds[1])
        tx = x if step == 0 else x + 8  # a moved label sits further right, its leader line ending before it
        if all(abs(ty - py) >= line or abs(tx - px) >= max(width, 14.0) + 2 for px, py in placed):
            placed.append((tx, ty))
            return tx, ty
    placed.append((x, y))
    return x, y
