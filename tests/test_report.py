"""report.html and report.json: written at the end of a run, rebuilt identically by `roi report`, complete in
both languages, self-contained, and with every piece of model output and pilot text escaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from roi.cli import app
from roi.economics import plan_economics
from roi.gates import flag_gate
from roi.pilot import LoadedPilot
from roi.prompts import PromptCall, Query
from roi.report import money, sections
from roi.report.build import build_report
from roi.report.i18n import MESSAGES, text
from roi.report.inputs import ReportInputs
from roi.report.wording import gate_n, pct, seconds
from roi.runner import RunResult

from .test_decision import make_pilot, run_fake
from .test_economics import pairs, pilot, uneven_pairs

# Sections every report has; others (e.g. the trend) may leave themselves out when they have no data.
STANDARD = [
    "roi",
    "gates",
    "accuracy",
    "interference",
    "latency",
    "cost",
    "grouping",
    "failures",
    "operations",
    "method",
]
SCRIPT = "<script>document.title='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"


def hostile(query: Query, call: PromptCall) -> str | None:
    """Mixed answers that are markup: alpha answers a script, beta an image with an onerror handler."""
    if call.mode == "single":
        return query.item.output
    return SCRIPT if query.task == "alpha" else IMG


def hostile_pilot(folder: Path, language: str = "en") -> LoadedPilot:
    extra = {
        "description": "<b>bold</b> & <i>pilot</i> text",
        "business_unit": "Unit <u>7</u>",
        "report": {"language": language},
    }
    return make_pilot(folder, extra=extra)


@pytest.fixture
def hostile_run(tmp_path: Path) -> RunResult:
    return run_fake(hostile_pilot(tmp_path), tmp_path, hostile)


def test_run_writes_report_with_every_section(hostile_run: RunResult) -> None:
    html = (hostile_run.run_dir / "report.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in html
    figures = json.loads((hostile_run.run_dir / "report.json").read_text(encoding="utf-8"))
    shown = [s["id"] for s in figures["sections"]]
    assert [s for s in shown if s in STANDARD] == STANDARD
    for section_id in shown:
        assert f'<section id="{section_id}"' in html
    assert 'id="decision"' in html and "Do not roll out mixed prompting with fake yet" in html
    assert figures["decision"]["stage"] == 0 and figures["decision"]["outcome"] == "hold"
    gates = figures["decision_detail"]["models"][0]["gates"]
    assert {g["gate"] for g in gates} >= {"accuracy_drop", "swap_rate", "cost_saving", "p95_latency", "operations"}
    assert "charts" not in json.dumps(figures)  # drawing instructions stay out of the figures


def test_model_output_and_pilot_text_are_escaped(hostile_run: RunResult) -> None:
    html = (hostile_run.run_dir / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()  # the page has no script of its own either
    assert "<img" not in html.lower() and "onerror=" not in html.replace("onerror=&#34;", "")
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;document.title=&#39;pwned&#39;&#34;&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;i&gt;pilot&lt;/i&gt; text" in html
    assert "Unit &lt;u&gt;7&lt;/u&gt;" in html and "<u>" not in html


class TagCollector(HTMLParser):
    """The real elements of a page (escaped text stays text), their URLs and the stylesheet."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self._in_style = tag == "style"
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action", "srcset")]

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_self_contained_no_network(hostile_run: RunResult) -> None:
    html = (hostile_run.run_dir / "report.html").read_text(encoding="utf-8")
    assert "default-src 'none'" in html  # CSP: nothing may load even if something slipped through
    tags = TagCollector()
    tags.feed(html)
    assert {"script", "img", "link", "iframe", "object", "embed"}.isdisjoint(tags.names)
    assert all(url.startswith("#") for url in tags.urls), tags.urls  # only in-page anchors
    assert "url(" not in "".join(tags.styles) and "@import" not in "".join(tags.styles)
    assert "@page" in html and "size: A4" in html  # print stylesheet
    assert "<svg" in html and "<text" in html  # charts are inline SVG with their values as text


def test_japanese_report_is_complete(tmp_path: Path) -> None:
    assert MESSAGES["en"].keys() == MESSAGES["ja"].keys()
    assert all(MESSAGES["ja"][k].strip() for k in MESSAGES["ja"])
    result = run_fake(hostile_pilot(tmp_path, "ja"), tmp_path, hostile)
    html = (result.run_dir / "report.html").read_text(encoding="utf-8")
    assert '<html lang="ja">' in html
    for heading in ("投資対効果", "判定基準", "タスク間の干渉", "チェックリストとエスカレーション", "方法と再現性"):
        assert heading in html
    assert "混合プロンプト導入はまだ行わないでください" in html
    assert ">単一</text>" in html and ">混合</text>" in html  # chart legends in Japanese
    leftovers = ("Return on investment", "Escalation path", "Sample failures", "folder holding", "all タスク")
    english_only = [k for k in leftovers if k in html]
    assert english_only == []
    assert "roi.db のあるフォルダ" in html and "1回の呼び出しに全タスク" in html


def test_roi_report_rebuilds_the_same_page(hostile_run: RunResult) -> None:
    before = (hostile_run.run_dir / "report.html").read_text(encoding="utf-8")
    (hostile_run.run_dir / "report.html").unlink()
    out = hostile_run.db_path.parent
    result = CliRunner().invoke(app, ["report", hostile_run.run_id, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Stage 0 (pilot)" in result.output
    assert "What to do next:" in result.output  # the briefing, as roi run printed it
    assert (hostile_run.run_dir / "report.html").read_text(encoding="utf-8") == before
    result = CliRunner().invoke(app, ["report", hostile_run.run_id, "--out", str(out), "--language", "ja"])
    assert result.exit_code == 0
    assert '<html lang="ja">' in (hostile_run.run_dir / "report.ja.html").read_text(encoding="utf-8")
    assert (hostile_run.run_dir / "report.html").read_text(encoding="utf-8") == before  # beside, not over it


def test_roi_report_errors_exit_2_and_write_nothing(tmp_path: Path, hostile_run: RunResult) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    missing = subprocess.run(
        [sys.executable, "-m", "roi", "report", "nope", "--out", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert missing.returncode == 2 and "no run store here" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "empty").exists()
    out = str(hostile_run.db_path.parent)
    unknown = subprocess.run(
        [sys.executable, "-m", "roi", "report", "20990101-x", "--out", out],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert unknown.returncode == 2 and "no run '20990101-x'" in unknown.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "roi", "report", hostile_run.run_id, "--out", out],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0 and "report.html" in ok.stdout


def test_a_section_can_be_added(hostile_run: RunResult, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sections, "SECTIONS", list(sections.SECTIONS))
    sections.register(
        sections.Section("extra", "sections/latency.html.j2", sections.build_latency, {"en": "Extra", "ja": "追加"}),
        after="gates",
    )
    data = build_report(ReportInputs(hostile_run.evaluation, "en"))
    ids = [s["id"] for s in data["sections"]]
    assert ids[:4] == ["levers", "roi", "gates", "extra"] and data["sections"][3]["title"] == "Extra"
    assert data["sections"][3]["data"]["rows"]  # the builder's plain data, as the template gets it


def test_very_uneven_call_costs_are_named_in_both_languages() -> None:
    def plan(p: dict[str, Any]) -> Any:
        return plan_economics(pilot(volumes=(1000, 1000)), "m", p, ["t1", "t2"], seed=1)

    uneven = plan(uneven_pairs())  # a spread of 25 (tests/test_economics.py)
    assert "is 25.0 times as dear as one at the 10th" in money.uneven(uneven, "en")
    assert "25.0 倍" in money.uneven(uneven, "ja")
    assert money.uneven(plan(pairs(11)), "en") == ""
    dearer = {t: replace(x, cost_mixed=np.full(11, 0.1)) for t, x in uneven_pairs().items()}
    assert money.uneven(plan(dearer), "en") == ""  # mixing saves nothing: no saving to doubt


def test_a_condition_gate_counts_nothing() -> None:
    owners = flag_gate("operations", False)
    assert gate_n(owners, "en") == "n/a" and gate_n(owners, "ja") == "該当なし"
    sharing = flag_gate("group_exists", True, value=2.0, limit=2.0, n=4)
    assert gate_n(sharing, "en") == "4"  # a count of tasks is an n


def test_large_figures_read_with_thousands_separators() -> None:
    collect = text("en", "brief.next.collect", more=3185, needed=3221)
    assert "about 3,185 more" in collect and "about 3,221 per task" in collect
    assert "3,185" in text("ja", "brief.next.collect", more=3185, needed=3221)
    assert "seed 12345" in text("en", "method.stats_text", resamples=2000, seed=12345)  # an identifier
    assert pct(7285407.333) == "728,540,733.3%" and pct(-12.5, signed=True) == "−1,250%"


def test_a_latency_under_a_hundredth_keeps_its_digit() -> None:
    assert (seconds(0.001), seconds(0.004), seconds(0.0), seconds(1.234)) == ("0.001 s", "0.004 s", "0.00 s", "1.23 s")


def test_a_count_of_one_takes_the_singular() -> None:
    assert text("en", "gates.calls", n=1) == "1 call" and text("en", "gates.calls", n=21) == "21 calls"
    assert text("en", "reason.items.pass", n=1, limit=30).startswith("1 paired item, ")
    assert text("en", "reason.items.pass", n=11, limit=30).startswith("11 paired items, ")
