"""The table of gates (roi/gates.py) is what the decision judges, what the report words and what the docs
list: a gate added to the table without its words or its docs row fails here."""

from __future__ import annotations

import re
from pathlib import Path

from roi import baseline
from roi.gates import GATES, PLACING
from roi.report.i18n import MESSAGES, text
from tests.conftest import REPO
from tests.test_decision import make_pilot, run_fake

PER = {"task": "grouped task", "mode": "model and mode", "model": "model", "pilot": "pilot"}
STATUSES = {"flag": ("pass", "fail"), "grouping": ("pass", "fail", "more_data"), "count": ("pass", "more_data")}


def test_every_gate_has_its_words_in_both_languages() -> None:
    for name, gate in GATES.items():
        for lang in MESSAGES:
            assert f"gate.{name}" in MESSAGES[lang], (lang, name)
            for status in STATUSES.get(gate.reason, ()):
                assert f"reason.{name}.{status}" in MESSAGES[lang], (lang, name, status)


def test_the_docs_table_lists_every_gate() -> None:
    doc = (REPO / "docs" / "report.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d) \| ([^|]+) \| ([^|]+) \|", doc, re.M)
    listed = {(int(stage), label.strip(), per.strip()) for stage, label, per in rows}
    expected = {(g.stage, text("en", f"gate.{name}"), PER[g.per]) for name, g in GATES.items()}
    assert listed == expected


def test_the_decision_judges_the_table_in_its_order(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path)
    gates = run_fake(pilot, tmp_path).decision.chosen.gates
    assert list(dict.fromkeys(g.gate for g in gates)) == list(GATES)
    assert all(g.stage == GATES[g.gate].stage for g in gates)
    per_task = [(g.task, g.gate) for g in gates if GATES[g.gate].per == "task"]
    tasks = [t.spec.name for t in pilot.tasks]
    assert per_task == [(t, name) for t in tasks for name, gate in GATES.items() if gate.per == "task"]
    assert PLACING == ("items", "accuracy_drop", "unparseable_rate")


def test_a_gate_per_mode_is_compared_per_mode() -> None:
    def brief(single: str, mixed: str) -> dict[str, object]:
        modes = (("single", single), ("mixed", mixed))
        gates = [{"gate": "failed_calls", "task": None, "mode": m, "status": s} for m, s in modes]
        return {"model": "m", "stage": 1, "models": [{"model": "m", "gates": gates}]}

    found = baseline.decision_regressions(brief("pass", "pass"), brief("pass", "fail"))
    assert [(r.what, r.before, r.now) for r in found] == [("failed_calls (mixed)", "pass", "fail")]
