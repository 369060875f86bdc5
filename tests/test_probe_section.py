"""The probe's report section (roi/report/probe_section.py): the calibration chart numbers every point
and its labels never overlap, by geometry and in a real browser."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import roi
from roi.probe import figures as probe_figures
from roi.report import probe_section
from roi.report.i18n import words as section_words
from tests.test_probe import _row


def clustered_figures() -> list[probe_figures.MixtureFigures]:
    """Five mixtures of three tasks whose minority and absent tasks all sit near the origin, where the
    first version's labels were drawn over one another."""
    rows = []
    for m, (pa, pb) in enumerate([(0.5, 0.01), (0.3, 0.004), (0.01, 0.2), (0.02, 0.003), (0.1, 0.12)]):
        for i in range(3):
            for task, share, p in (("a", 0.5, pa), ("b", 0.5, pb), ("c", 0.0, 0.0005 + 0.0001 * m)):
                row = _row(i, task, share, p * (1 + 0.1 * i), True)
                rows.append(dataclasses.replace(row, mixture=f"mix {m}"))
    return probe_figures.figures(rows, beam_width=0)


def test_chart_numbers_every_point_without_overlap() -> None:
    figs = clustered_figures()
    chart = probe_section.calibration_chart(figs, section_words("en", "probe"))
    labels = [s for s in chart.shapes if s["kind"] == "text" and "probe-label" in s["cls"]]
    assert [s["text"] for s in labels] == [str(n) for n in range(1, 16)]
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            assert abs(a["y"] - b["y"]) >= 14 or abs(a["x"] - b["x"]) >= 16, (a["text"], b["text"])


def test_chart_labels_do_not_overlap_in_chromium(tmp_path: Path) -> None:
    """The same check on the glyphs a real browser draws (Debian's Chromium, as the report tests)."""
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    from roi.report.render import svg

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed")
    css = (Path(roi.__file__).parent / "report" / "templates" / "style.css").read_text()
    page_html = f"<html><head><style>{css}</style></head><body style='width:600px'>"
    page_html += (
        str(svg(probe_section.calibration_chart(clustered_figures(), section_words("en", "probe")))) + "</body></html>"
    )
    (tmp_path / "chart.html").write_text(page_html)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox"])
        page = browser.new_page()
        page.goto((tmp_path / "chart.html").as_uri())
        boxes = [t.bounding_box() for t in page.query_selector_all("text.probe-label")]
        browser.close()
    assert len(boxes) == 15 and all(b is not None and b["width"] > 0 for b in boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a is not None and b is not None
            apart = a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
            apart = apart or a["y"] + a["height"] <= b["y"] + 0.5 or b["y"] + b["height"] <= a["y"] + 0.5
            assert apart, (a, b)
