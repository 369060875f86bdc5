"""The superposition probe (roi/probe/): pilot section, prompts, figures, and exactness against the
paper's reference computation on the real embedded model."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from roi import store
from roi.backends import (
    TEACHER_FORCING,
    CandidateScore,
    ContinuationQuery,
    ContinuationScores,
    ScoringFailed,
)
from roi.errors import RoiError
from roi.pilot import load_pilot
from roi.probe import figures as probe_figures
from roi.probe import prompts as probe_prompts
from roi.runner import RunOptions, run_pilot
from tests.backends.local.test_teacher_forcing import paper_reference
from tests.conftest import PILOTS
from tests.fakes import FakeBackend

EXAMPLE = PILOTS / "superposition-probe.yaml"


# ---------------------------------------------------------------- the pilot section


def test_example_pilot_loads_with_its_probe() -> None:
    pilot = load_pilot(EXAMPLE)
    assert pilot.spec.probe is not None
    assert pilot.spec.probe.tasks == ["number_en", "number_fr", "plus_one"]
    uniform = pilot.spec.probe.mixtures[-1]
    assert uniform == pytest.approx({"number_en": 1 / 3, "number_fr": 1 / 3, "plus_one": 1 / 3})


def _with_probe(tmp_path: Path, probe_yaml: str) -> Path:
    text = EXAMPLE.read_text().split("probe:\n")[0] + probe_yaml + "seed: 7\n"
    path = tmp_path / "p.yaml"
    path.write_text(text)
    for data in (PILOTS / "data" / "probe").glob("*.csv"):
        (tmp_path / "data" / "probe").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / "probe" / data.name).write_text(data.read_text())
    return path


BAD_PROBES = [
    ("unknown task", "probe:\n  tasks: [number_en, capital]\n  mixtures: [uniform]\n",
     ["p.yaml:35", "probe.tasks", "capital: not defined under tasks"]),
    ("unknown model", "probe:\n  tasks: [number_en, plus_one]\n  mixtures: [uniform]\n  models: [gpt]\n",
     ["probe.models", "gpt"]),
    ("one task", "probe:\n  tasks: [number_en]\n  mixtures: [uniform]\n", ["p.yaml:35", "probe.tasks", "at least 2"]),
    ("shares do not add up", "probe:\n  tasks: [number_en, plus_one]\n  mixtures:\n    - [0.5, 0.6]\n",
     ["p.yaml:36", "probe.mixtures", "mixtures[0]: shares add up to 1.1"]),
    ("list of the wrong length", "probe:\n  tasks: [number_en, plus_one]\n  mixtures: [[1.0]]\n",
     ["probe.mixtures", "1 shares for 2 probe tasks"]),
    ("task outside the probe", "probe:\n  tasks: [number_en, plus_one]\n  mixtures:\n    - {number_fr: 1}\n",
     ["probe.mixtures", "number_fr not in probe.tasks"]),
    ("negative share", "probe:\n  tasks: [number_en, plus_one]\n  mixtures:\n    - [-0.5, 1.5]\n",
     ["probe.mixtures", "greater than or equal to 0"]),
    ("too few shared inputs",
     "probe:\n  tasks: [number_en, plus_one]\n  mixtures: [uniform]\n  examples_per_prompt: 150\n",
     ["probe.tasks", "99 inputs are shared", "151 needed"]),
    ("unknown key", "probe:\n  tasks: [number_en, plus_one]\n  mixtures: [uniform]\n  shots: 3\n",
     ["p.yaml:37", "probe.shots", "unknown key"]),
]  # fmt: skip


@pytest.mark.parametrize(("label", "probe_yaml", "expected"), BAD_PROBES, ids=[c[0] for c in BAD_PROBES])
def test_bad_probe_section_is_located(tmp_path: Path, label: str, probe_yaml: str, expected: list[str]) -> None:
    path = _with_probe(tmp_path, probe_yaml)
    with pytest.raises(RoiError) as caught:
        load_pilot(path)
    message = str(caught.value)
    for part in expected:
        assert part in message, f"{label}: {part!r} not in {message!r}"


# ---------------------------------------------------------------- prompts and figures (pure)


def test_example_counts_follow_the_shares() -> None:
    assert probe_prompts.example_counts({"a": 0.5, "b": 0.5}, 5) == {"a": 3, "b": 2}
    assert probe_prompts.example_counts({"a": 0.8, "b": 0.2, "c": 0.0}, 30) == {"a": 24, "b": 6, "c": 0}
    assert probe_prompts.example_counts({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10) == {"a": 4, "b": 3, "c": 3}


def test_prompts_are_deterministic_and_mix_as_asked() -> None:
    pilot = load_pilot(EXAMPLE)
    first, again = probe_prompts.build_prompts(pilot), probe_prompts.build_prompts(pilot)
    assert first == again
    assert len(first) == 5 * 24
    skewed = [p for p in first if p.mixture == "number_en 0.80 + number_fr 0.20"]
    for prompt in skewed:
        lines = prompt.text.split("\n")
        assert len(lines) == 31 and lines[-1] == f"{prompt.query} ->"
        outputs = [line.split(" -> ")[1] for line in lines[:-1]]
        english = sum(o == probe_answer(pilot, "number_en", line) for o, line in zip(outputs, lines, strict=False))
        assert english == 24  # 0.8 of 30
        assert prompt.query not in {line.split(" -> ")[0] for line in lines[:-1]}
        assert len(set(prompt.answers.values())) == 3  # the query's answers name one task each


def probe_answer(pilot: Any, task: str, line: str) -> str:
    number = line.split(" -> ")[0]
    rows = pilot.task(task).examples + pilot.task(task).eval_items
    return next(r.output for r in rows if r.input == number)


def test_kl_is_the_papers_unnormalised_one_and_the_renormalised_one() -> None:
    shares = {"a": 0.5, "b": 0.5, "c": 0.0}
    p = {"a": 0.2, "b": 0.1, "c": 0.3}
    raw, renorm = probe_figures.kl_pair(shares, {t: math.log(v) for t, v in p.items()})
    # By hand: 0.5*ln(0.5/0.2) + 0.5*ln(0.5/0.1); renormalised over a, b: p' = (2/3, 1/3).
    assert raw == pytest.approx(0.5 * math.log(2.5) + 0.5 * math.log(5))
    assert renorm == pytest.approx(0.5 * math.log(0.5 / (2 / 3)) + 0.5 * math.log(0.5 / (1 / 3)))


def _row(index: int, task: str, share: float, p: float, in_beam: bool) -> probe_figures.ProbeRow:
    return probe_figures.ProbeRow(
        model="m",
        mixture="a 0.50 + b 0.50",
        prompt_index=index,
        task=task,
        share=share,
        query="q",
        answer="x",
        logprob=math.log(p),
        probability=p,
        answer_tokens=1,
        in_beam=in_beam,
        prompt_tokens=10,
    )


def test_figures_by_hand() -> None:
    rows = [
        _row(0, "a", 0.5, 0.4, True), _row(0, "b", 0.5, 0.4, True),
        _row(1, "a", 0.5, 0.6, True), _row(1, "b", 0.5, 0.2, False),
    ]  # fmt: skip
    (fig,) = probe_figures.figures(rows, beam_width=0)
    a, b = fig.tasks
    assert (a.probability.value, b.probability.value) == (pytest.approx(0.5), pytest.approx(0.3))
    assert a.probability.n == 2 and a.probability.low is not None and a.probability.low <= 0.5
    assert (fig.all_in_beam.k, fig.all_in_beam.n) == (1, 2)
    assert fig.leftover.value == pytest.approx(((1 - 0.8) + (1 - 0.8)) / 2)
    kl0 = 0.5 * math.log(0.5 / 0.4) * 2
    kl1 = 0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.2)
    assert fig.kl.value == pytest.approx((kl0 + kl1) / 2)
    assert fig.beam_width == 2


# ---------------------------------------------------------------- a run with a probe, end to end


def test_run_stores_probe_rows_and_figures(tmp_path: Path, embedded_model_dir: Path) -> None:
    from roi.backends.local.transformers_backend import TransformersBackend

    probe_yaml = (
        "probe:\n  tasks: [number_en, number_fr]\n  mixtures:\n    - [0.5, 0.5]\n"
        "  examples_per_prompt: 4\n  prompts_per_mixture: 2\n"
    )
    pilot = load_pilot(_with_probe(tmp_path, probe_yaml))
    backend = TransformersBackend(pilot.spec.models[0], tmp_path, lambda s: None)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", limit=1, backends={"gemma-270m": backend}))
    db = sqlite3.connect(result.db_path)
    rows = db.execute("SELECT mixture, prompt_index, task, share, probability, logprob FROM probe").fetchall()
    assert len(rows) == 1 * 2 * 2
    assert {r[0] for r in rows} == {"number_en 0.50 + number_fr 0.50"}
    assert all(0 < r[4] <= 1 and r[4] == pytest.approx(math.exp(r[5])) for r in rows)
    # The stored probabilities are the model's: recompute one prompt with the reference.
    prompt = probe_prompts.build_prompts(pilot)[0]
    stored = {r[2]: r[4] for r in rows if r[0] == prompt.mixture and r[1] == 0}
    expected = paper_reference(backend.model, backend.tokenizer, prompt.text, " " + prompt.answers["number_en"])
    assert stored["number_en"] == pytest.approx(expected, rel=1e-5)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    by_mixture = {f["mixture"]: f for f in summary["probe"]}
    even = by_mixture["number_en 0.50 + number_fr 0.50"]
    assert even["prompts"] == 2 and even["kl"]["n"] == 2 and even["all_in_beam"]["n"] == 2
    assert [t["share"] for t in even["tasks"]] == [0.5, 0.5]
    assert result.probe and {f.mixture for f in result.probe} == set(by_mixture)
    report = (result.run_dir / "report.html").read_text()
    assert 'id="probe"' in report and "number_en 0.50 + number_fr 0.50" in report  # chart and reading
    # Resuming the finished run re-probes nothing and keeps the rows.
    again = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", limit=1, resume=result.run_id,
                                        backends={"gemma-270m": backend}))  # fmt: skip
    assert db.execute("SELECT COUNT(*) FROM probe WHERE run_id = ?", (again.run_id,)).fetchone()[0] == 4


def test_console_table_shows_every_mixture() -> None:
    from rich.console import Console

    from roi import console

    rows = [_row(0, "a", 0.5, 0.4, True), _row(0, "b", 0.5, 0.4, True), _row(1, "a", 0.5, 0.6, True),
            _row(1, "b", 0.5, 0.2, False)]  # fmt: skip
    recorder = Console(record=True, width=200)
    recorder.print(console.probe_table(probe_figures.figures(rows, beam_width=0)))
    text = recorder.export_text()
    assert "a 0.50 + b 0.50" in text and "a [0.50]: 0.500" in text and "K=2: 50%" in text


# ---------------------------------------------------------------- the probe asks the backend


@dataclass
class Scoring(FakeBackend):
    """The fake generator with a scoring capability: candidate k gets probability 0.5 ** (k + 1); it fails
    (as a server call would, after its retries) from query `fail_at` on."""

    fail_at: int | None = None
    queries: list[ContinuationQuery] = field(default_factory=list)

    def score_continuations(self, query: ContinuationQuery) -> ContinuationScores:
        if self.fail_at is not None and len(self.queries) >= self.fail_at:
            raise ScoringFailed("HTTP 500 after 2 retries")
        self.queries.append(query)
        scores = [CandidateScore(math.log(0.5 ** (k + 1)), 2) for k in range(len(query.candidates))]
        return ContinuationScores("echo", 12, scores, [query.candidates[0].strip()])


def small_probe(tmp_path: Path) -> Any:
    probe_yaml = "probe:\n  tasks: [number_en, number_fr]\n  mixtures:\n    - [0.5, 0.5]\n  prompts_per_mixture: 3\n"
    return load_pilot(_with_probe(tmp_path, probe_yaml))


def test_the_probe_stores_what_the_backend_scores(tmp_path: Path) -> None:
    pilot = small_probe(tmp_path)
    backend = Scoring(pilot.spec.models[0], pilot)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", limit=1, backends={"gemma-270m": backend}))
    prompts = probe_prompts.build_prompts(pilot)
    assert [q.prompt for q in backend.queries] == [p.text for p in prompts]
    assert backend.queries[0].candidates == tuple(" " + a for a in prompts[0].answers.values())
    assert backend.queries[0].top_k == 2  # two tasks with examples in the prompt
    rows = probe_figures.stored_rows(store.connect(result.db_path), result.run_id)
    assert [(r.task, r.probability, r.in_beam, r.method) for r in rows[:2]] == [
        ("number_en", 0.5, True, "echo"), ("number_fr", 0.25, False, "echo")]  # fmt: skip
    assert result.probe[0].method == "echo" and result.probe[0].tasks[0].probability.value == pytest.approx(0.5)


@dataclass
class Loads:
    """Stands in for the runner's `create_backend`: every backend it builds, every close, and how many
    were open right after each load."""

    pilot: Any
    loaded: list[Scoring] = field(default_factory=list)
    closed: list[Scoring] = field(default_factory=list)
    open_after_load: list[int] = field(default_factory=list)

    def __call__(self, model: Any, *_: Any) -> Scoring:
        closed = self.closed

        class Closing(Scoring):
            def close(self) -> None:
                closed.append(self)

        self.loaded.append(Closing(model, self.pilot))
        self.open_after_load.append(len(self.loaded) - len(self.closed))
        return self.loaded[-1]


def test_the_probe_reuses_the_backend_the_calls_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model is loaded once for its calls and its probe, and closed once when both are done."""
    pilot = small_probe(tmp_path)
    loads = Loads(pilot)
    monkeypatch.setattr("roi.runner.create_backend", loads)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", limit=1))
    assert len(loads.loaded) == 1 and loads.closed == loads.loaded
    assert len(loads.loaded[0].seen) > 0 and len(loads.loaded[0].queries) == len(probe_prompts.build_prompts(pilot))
    assert result.probe[0].method == "echo"


def test_two_models_are_never_loaded_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend kept for a probe is closed before another model loads."""
    one = small_probe(tmp_path)
    second = one.spec.models[0].model_copy(update={"name": "second"})
    pilot = dataclasses.replace(one, spec=one.spec.model_copy(update={"models": [*one.spec.models, second]}))
    loads = Loads(pilot)
    monkeypatch.setattr("roi.runner.create_backend", loads)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "out", limit=1))
    assert max(loads.open_after_load) == 1 and len(loads.closed) == len(loads.loaded)
    assert [f.model for f in result.probe] == ["gemma-270m", "second"]


def test_a_backend_that_cannot_score_is_skipped_and_a_failure_stops_the_model(tmp_path: Path) -> None:
    pilot = small_probe(tmp_path)
    cannot = FakeBackend(pilot.spec.models[0], pilot)
    statuses: list[str] = []
    options = RunOptions(out_dir=tmp_path / "a", limit=1, backends={"gemma-270m": cannot}, status=statuses.append)
    result = run_pilot(pilot, options)
    environment = json.loads(store.get_run(store.connect(result.db_path), result.run_id)["environment_json"])
    assert environment["probe"]["gemma-270m"] == "probe skipped: the fake backend reads no probabilities"
    assert any("probe skipped" in s for s in statuses) and result.probe == [] and result.summary.cells
    failing = Scoring(pilot.spec.models[0], pilot, fail_at=2)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path / "b", limit=1, backends={"gemma-270m": failing}))
    environment = json.loads(store.get_run(store.connect(result.db_path), result.run_id)["environment_json"])
    assert environment["probe"]["gemma-270m"] == "probe stopped after 2 of 3 prompts: HTTP 500 after 2 retries"
    kept = probe_figures.stored_rows(store.connect(result.db_path), result.run_id)
    assert len(kept) == 2 * 2  # what was read is kept


def test_the_run_deadline_stops_the_probe_between_prompts_and_resume_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline passes while the probe runs (here: once its first prompt is scored): the probe
    stops before the next prompt, the run ends stopped by the deadline, and --resume probes the rest."""
    from roi import runner

    late = {"now": False}
    monkeypatch.setattr(runner.Deadline, "passed", lambda self: late["now"])

    class LateAfterOne(Scoring):
        def score_continuations(self, query: ContinuationQuery) -> ContinuationScores:
            scores = super().score_continuations(query)
            late["now"] = True
            return scores

    pilot = small_probe(tmp_path)
    options = RunOptions(out_dir=tmp_path / "out", limit=1, max_minutes=60.0)
    first = run_pilot(
        pilot, dataclasses.replace(options, backends={"gemma-270m": LateAfterOne(pilot.spec.models[0], pilot)})
    )
    db = store.connect(first.db_path)
    environment = json.loads(store.get_run(db, first.run_id)["environment_json"])
    assert environment["probe"]["gemma-270m"] == "probe stopped at the run deadline after 1 of 3 prompts"
    assert first.stopped is not None and "the probe" in first.stopped
    assert len(probe_figures.stored_rows(db, first.run_id)) == 2  # one prompt, two tasks
    late["now"] = False
    rest = Scoring(pilot.spec.models[0], pilot)
    second = run_pilot(pilot, dataclasses.replace(options, resume=first.run_id, backends={"gemma-270m": rest}))
    assert second.stopped is None and len(rest.queries) == 2
    assert len(probe_figures.stored_rows(store.connect(second.db_path), second.run_id)) == 3 * 2


# ---------------------------------------------------------------- an old store keeps its probe rows


def test_store_from_before_the_method_column_opens_and_reads(tmp_path: Path) -> None:
    path = tmp_path / "roi.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE _roi_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for migration in store.MIGRATIONS[: [m.name for m in store.MIGRATIONS].index("create_probe") + 1]:
        store.run_script(old, migration.sql)  # the store as the first probe release left it
        old.execute("INSERT INTO _roi_migrations VALUES (?, 'then')", (migration.name,))
    old.execute("INSERT INTO runs (run_id, pilot, pilot_path, pilot_sha256, pilot_json, started_at, status)"
                " VALUES ('r', 'p', 'p.yaml', '', '{}', 'then', 'complete')")  # fmt: skip
    old.execute("INSERT INTO probe VALUES ('r', 'm', 'a 0.50 + b 0.50', 0, 'a', 0.5, 'q', 'x', -1.0, 0.37, 1, 1, 10)")
    old.commit()
    old.close()
    db = store.connect(path)
    (row,) = probe_figures.stored_rows(db, "r")
    assert row.method == TEACHER_FORCING and row.upper_bound is False and row.in_beam is True
    assert not probe_figures.figures([row], beam_width=0)[0].estimate
