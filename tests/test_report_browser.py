"""The report in a real browser: Debian's headless Chromium driven by playwright (no browser download).

One real run of the demo pilot on the embedded model (one item per task) gives the English and the
Japanese page; a fake-backend run whose model answers with markup checks that nothing of it runs.
Screenshots (and an A4 PDF) go to tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from roi.pilot import load_pilot
from roi.report import write_report
from roi.runner import RunOptions, run_pilot

from .conftest import PILOTS, REPO
from .test_decision import gamma_takes_alphas_answer, make_pilot, run_fake
from .test_report import STANDARD, hostile, hostile_pilot

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "tests" / "artifacts"


@dataclass
class PageLog:
    """What a page did besides rendering: console messages, errors, requests, dialogs."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "install Debian's chromium (apt-get install chromium fonts-noto-cjk)"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def real_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """report.html in English and Japanese from one real run of the demo pilot (1 item per task)."""
    out = tmp_path_factory.mktemp("real")
    result = run_pilot(load_pilot(PILOTS / "superposition-demo.yaml"), RunOptions(out_dir=out, limit=1))
    assert result.evaluation.run["status"] == "complete"
    return {lang: write_report(result.evaluation, out / lang, lang).html for lang in ("en", "ja")}


def open_page(browser: Any, path: Path) -> tuple[Any, PageLog]:
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    log = PageLog()
    page.on("console", lambda m: log.console_errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    page.on("request", lambda r: log.requests.append(r.url))

    def dialog(d: Any) -> None:
        log.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.goto(path.as_uri(), wait_until="load")
    return page, log


def fonts_used(page: Any, selector: str) -> dict[str, int]:
    """The platform fonts Chromium actually drew a node's text with (family -> glyph count)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return {f["familyName"]: f["glyphCount"] for f in fonts}


def shoot_summary(page: Any, name: str) -> None:
    """The briefing at the top of the page, as a manager first sees it (tests/artifacts/)."""
    brief = page.locator("#decision .brief")
    assert brief.is_visible()
    assert page.locator("#decision .brief ul.next li").count() >= 1
    box = page.locator("#decision").bounding_box()
    assert box is not None and box["y"] + box["height"] < 1400  # the decision and its reasons fit one screen
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#decision").screenshot(path=str(ARTIFACTS / name))


def assert_clean(page: Any, log: PageLog, path: Path) -> None:
    assert log.requests == [path.as_uri()], log.requests  # the page itself, nothing else
    assert log.console_errors == [] and log.page_errors == [] and log.dialogs == []
    headline = page.locator("#decision .headline")
    assert headline.is_visible() and headline.inner_text().strip()
    assert page.locator("#decision .stage-badge").is_visible()
    shown = page.eval_on_selector_all("main > section", "nodes => nodes.map(n => n.id)")
    assert [s for s in shown if s in STANDARD] == STANDARD
    for section_id in shown:  # the standard ones and any a helper module added
        assert page.locator(f"section#{section_id} > h2").is_visible(), section_id
    assert page.locator("svg.chart").count() >= 5


@pytest.mark.model
def test_english_report_renders_cleanly(browser: Any, real_reports: dict[str, Path]) -> None:
    path = real_reports["en"]
    page, log = open_page(browser, path)
    assert_clean(page, log, path)
    assert "gemma-270m" in page.locator("#decision").inner_text()
    assert "What was measured: 4 tasks (capital, upper, number_en, en_fr)" in page.locator(".brief").inner_text()
    shoot_summary(page, "report-summary-en.png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-en.png"), full_page=True)
    page.emulate_media(media="print")
    pdf = page.pdf(path=str(ARTIFACTS / "report-en.pdf"), format="A4", print_background=True)
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 3
    assert not page.locator("nav").is_visible()  # the print stylesheet drops the contents list
    page.close()


@pytest.mark.model
def test_japanese_report_draws_japanese_glyphs(browser: Any, real_reports: dict[str, Path]) -> None:
    path = real_reports["ja"]
    page, log = open_page(browser, path)
    assert_clean(page, log, path)
    assert page.locator("html").get_attribute("lang") == "ja"
    assert "推奨段階" in page.locator("#decision").inner_text()
    for selector in ("#decision .headline", "section#accuracy svg text.legend"):
        fonts = fonts_used(page, selector)
        assert any("CJK" in family and count > 0 for family, count in fonts.items()), (selector, fonts)
    assert page.locator("section#accuracy svg text.legend").first.text_content() == "単一"
    assert "測定内容" in page.locator(".brief").inner_text()
    fonts = fonts_used(page, "#decision .brief ul.next li")
    assert any("CJK" in family and count > 0 for family, count in fonts.items()), fonts
    shoot_summary(page, "report-summary-ja.png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-ja.png"), full_page=True)
    page.close()


def test_markup_in_model_output_does_not_run(browser: Any, tmp_path: Path) -> None:
    result = run_fake(hostile_pilot(tmp_path), tmp_path, hostile)
    path = result.run_dir / "report.html"
    page, log = open_page(browser, path)
    assert_clean(page, log, path)
    assert page.title() != "pwned" and "pwned" not in page.evaluate("document.title")
    assert page.evaluate("document.querySelectorAll('script, img').length") == 0
    failures = page.locator("section#failures").inner_text()
    assert "<script>document.title='pwned'</script>" in failures  # shown as text, verbatim
    assert "<img src=x onerror=" in failures
    assert "<b>bold</b> & <i>pilot</i> text" in page.locator("header").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("section#failures").screenshot(path=str(ARTIFACTS / "report-hostile-failures.png"))
    page.close()


def test_summary_of_a_go_decision(browser: Any, tmp_path: Path) -> None:
    """A pilot whose mixed calls hold up: the briefing says what held and which stage to start."""
    pilot = make_pilot(tmp_path, ("alpha", "beta", "gamma"), items=160)
    result = run_fake(pilot, tmp_path, gamma_takes_alphas_answer)
    path = result.run_dir / "report.html"
    page, log = open_page(browser, path)
    assert_clean(page, log, path)
    text = page.locator(".brief").inner_text()
    assert "Accuracy holds on alpha, beta" in text and "Start stage 2 (Limited)" in text
    assert "Keep gamma on single prompts" in page.locator("#decision").inner_text()
    shoot_summary(page, "report-summary-go.png")
    page.close()
