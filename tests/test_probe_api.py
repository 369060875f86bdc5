"""The superposition probe on API models (roi/backends/openai_logprobs.py) against the real llama.cpp server serving the
embedded GGUF: echo logprobs compared with the local probe on the same weights, the top-logprob beam
compared with echo, a whole run by each method, and a server stripped of logprobs by the fault proxy.

llama-cpp-python sorts the 262k-token vocabulary in Python for every echoed token (0.1-0.2 s each on
2 cores), so prompts here are a few lines long."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roi.backends import CandidateScore
from roi.backends import openai_logprobs as logprobs
from roi.backends.local.teacher_forcing import score_candidates
from roi.backends.openai_backend import OpenAIBackend
from roi.backends.openai_logprobs import TokenLogprobs
from roi.pilot import LoadedPilot, ModelSpec, ProbeSpec, load_pilot
from roi.planning import plan_pilot
from roi.runner import RunOptions, RunResult, run_pilot
from tests.servers import Fault, FaultProxy, LlamaServer

from .conftest import PILOTS

EXAMPLE = PILOTS / "superposition-probe.yaml"
CAPITALS = "France -> Paris\nJapan -> Tokyo\nItaly ->"
CANDIDATES = [" Rome", " Roma", " Milan", " Romeo and Juliet"]

# The server runs the Q4_K_M GGUF with llama.cpp's kernels (activations quantised to 8 bits in the dot
# products); the local model is that GGUF de-quantised to float32 (the measured differences on
# CANDIDATES: BENCHMARKS.md, "API models"). 0.25 leaves room for other CPUs' kernels yet catches a wrong
# token span (a token more or less moves a log-probability by 1 or more here); the ranking of the
# answers must be the same.
LOGPROB_ABS = 0.25


def api_model(base_url: str, **settings: Any) -> ModelSpec:
    settings = {"endpoint": "completions", **settings}  # the probe's preferred endpoint (echo)
    return ModelSpec(name="llama", backend="openai", model="gemma-3-270m", base_url=base_url, **settings)


# ---------------------------------------------------------------- pure: which echoed tokens are the answer's


def test_echo_span_scores_the_seam_token_and_not_the_generated_one() -> None:
    # "Italy ->" + "Rome" echoed as [..., " ->", " Rome", "\n"]: no merge; then "Italy -> " + "Rome",
    # where the prompt's trailing space merged into " Rome" (the token starts before the prompt ends).
    lp = TokenLogprobs(["Italy", " ->", " Rome", "\n"], [0, 5, 8, 13], [None, -1.0, -0.5, -2.0], [{}, {}, {}, {}])
    assert logprobs.echo_span(lp, len("Italy ->"), len("Italy -> Rome")) == [2]
    assert logprobs.echo_span(lp, len("Italy -> "), len("Italy -> Rome")) == [2]
    score = logprobs.echo_score(lp, "Italy ->", " Rome")
    assert score == CandidateScore(-0.5, 1)
    # A server that ignored echo returns only the generated token, whose offset is past the prompt.
    generated = TokenLogprobs(["\n"], [13], [-2.0], [{}])
    assert logprobs.echo_score(generated, "Italy ->", " Rome") is None


def test_offsets_index_the_returned_text() -> None:
    from roi.backends.openai_backend import offsets_in_text

    tokens = ["<bos>", "Italy", " ->", " Rome"]
    # vLLM counts "<bos>" as 5 characters though the text it returns starts at "Italy".
    assert offsets_in_text([0, 5, 10, 13], tokens, "Italy -> Rome") == [0, 0, 5, 8]
    assert offsets_in_text([0, 0, 5, 8], tokens, "Italy -> Rome") == [0, 0, 5, 8]  # already in the text
    assert offsets_in_text([0, 5, 10, 13], tokens, None) == [0, 5, 10, 13]
    # A byte piece shown as U+FFFD (1 character for 2 bytes of "é"): the lengths do not add up to the
    # text, but no leading token is missing from it, so nothing is shifted.
    assert offsets_in_text([0, 1, 3], ["a", "\ufffd", "b"], "a\ufffdb") == [0, 1, 3]
    assert offsets_in_text([0, 1, 2, 4], ["x", "y", "\ufffd\ufffd", "z"], "xy\ufffdz") == [0, 1, 2, 4]


def test_top_continuations_are_distinct_answers() -> None:
    class Lists:  # a fixed tree of top lists, to check the beam's bookkeeping only
        continuable = True

        def get(self, texts: list[str]) -> list[dict[str, float] | None]:
            tree = {"": {" Rome": -0.1, " Rome ": -0.2, " Milan": -3.0}, " Rome": {"\n": -0.1}, " Rome ": {"\n": -0.1}}
            return [tree.get(t, {"\n": 0.0}) for t in texts]

    assert logprobs.top_continuations(Lists(), "", width=2, max_steps=3) == ["Rome", "Milan"]  # type: ignore[arg-type]


# ---------------------------------------------------------------- against the real server


@pytest.fixture(scope="module")
def lm(embedded_model_dir: Path) -> Iterator[tuple[Any, Any]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir), dtype=torch.float32, local_files_only=True)
    yield model.eval(), tokenizer


@pytest.fixture(scope="module")
def echoed(llama_server: LlamaServer) -> list[CandidateScore]:
    backend = OpenAIBackend(api_model(llama_server.base_url), PILOTS, lambda s: None)
    scores, prompt_tokens = logprobs.score_by_echo(backend.logprobs, CAPITALS, CANDIDATES)
    assert prompt_tokens >= 10  # BOS + the prompt's tokens, by the server's count
    return scores


@pytest.mark.server
def test_echo_agrees_with_the_local_probe(echoed: list[CandidateScore], lm: tuple[Any, Any]) -> None:
    local = score_candidates(*lm, CAPITALS, CANDIDATES)
    assert [e.tokens for e in echoed] == [s.tokens for s in local]  # the same tokens, the same span
    for cand, api, here in zip(CANDIDATES, echoed, local, strict=True):
        assert api.logprob == pytest.approx(here.logprob, abs=LOGPROB_ABS), cand
    ranking = sorted(range(len(CANDIDATES)), key=lambda i: -echoed[i].logprob)
    assert ranking == sorted(range(len(CANDIDATES)), key=lambda i: -local[i].logprob)


@pytest.mark.server
def test_echo_scores_a_token_merged_across_the_seam(llama_server: LlamaServer, echoed: list[CandidateScore]) -> None:
    backend = OpenAIBackend(api_model(llama_server.base_url), PILOTS, lambda s: None)
    (merged,), _ = logprobs.score_by_echo(backend.logprobs, CAPITALS + " ", ["Rome"])
    # "Italy -> " + "Rome" is tokenised "... ->", " Rome": the same token and probability as " Rome".
    assert merged.tokens == 1 and merged.logprob == pytest.approx(echoed[0].logprob, abs=1e-3)


@pytest.mark.server
def test_top_logprob_walk_matches_echo_or_bounds_it(llama_server: LlamaServer, echoed: list[CandidateScore]) -> None:
    backend = OpenAIBackend(api_model(llama_server.base_url), PILOTS, lambda s: None)
    lists = logprobs.TopLists(backend.logprobs, continuable=True, top_n=20, cap=40)
    walked = [logprobs.walk(lists, CAPITALS, c) for c in CANDIDATES]
    for cand, w, e in zip(CANDIDATES, walked, echoed, strict=True):
        if w.upper_bound:  # a bound must hold: the true value is at most it
            assert e.logprob <= w.logprob + 1e-3, cand
        else:  # found along the lists: the same teacher-forced value as echo
            assert w.logprob == pytest.approx(e.logprob, abs=1e-2) and w.tokens == e.tokens, cand
    assert not walked[0].upper_bound  # " Rome" is the likeliest answer: always listed
    assert walked[3].upper_bound  # " Romeo and Juliet" leaves the top 20 at " and"
    assert lists.calls_made <= 40
    beams = logprobs.top_continuations(lists, CAPITALS, width=3, max_steps=3)
    assert len(beams) == len(set(beams)) == 3 and beams[0] == "Rome"


@pytest.mark.server
def test_chat_endpoint_reads_the_first_token_only(llama_server: LlamaServer) -> None:
    backend = OpenAIBackend(api_model(llama_server.base_url, endpoint="chat"), PILOTS, lambda s: None)
    lists = logprobs.TopLists(backend.logprobs, continuable=False, top_n=5, cap=3)
    scores = [logprobs.walk(lists, CAPITALS, c) for c in (" Rome", " Romeo and Juliet")]
    assert lists.calls_made == 1  # one reply's first-token list serves every candidate
    assert scores[1].upper_bound and all(s.logprob <= 0 for s in scores)


# ---------------------------------------------------------------- whole runs


def tiny_probe_pilot(base_url: str, **probe_settings: Any) -> LoadedPilot:
    """The example pilot with one API model, single mode only (one shot), and a probe of two tasks, two
    prompts of one example each and one mixture: echo's per-token cost on llama-cpp-python stays small."""
    pilot = load_pilot(EXAMPLE)
    spec = ProbeSpec(
        tasks=["number_en", "number_fr"], mixtures=[{"number_en": 0.5, "number_fr": 0.5}], examples_per_prompt=1,
        prompts_per_mixture=2, **probe_settings,
    )  # fmt: skip
    single = pilot.spec.modes.single.model_copy(update={"shots": 1})  # the run's own calls: short prompts
    mixed = pilot.spec.modes.mixed.model_copy(update={"enabled": False})
    modes = pilot.spec.modes.model_copy(update={"single": single, "mixed": mixed})
    pilot_spec = pilot.spec.model_copy(update={"models": [api_model(base_url)], "modes": modes, "probe": spec})
    return LoadedPilot(pilot_spec, pilot.path, pilot.sha256, pilot.tasks)


def probe_rows(result: RunResult) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(result.db_path)
    return db.execute(
        "SELECT task, probability, method, upper_bound FROM probe WHERE run_id = ?", (result.run_id,)
    ).fetchall()


@pytest.mark.server
def test_run_probes_an_api_model_by_echo(llama_server: LlamaServer, tmp_path: Path) -> None:
    pilot = tiny_probe_pilot(llama_server.base_url)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=1))
    rows = probe_rows(result)
    assert len(rows) == 2 * 2 and {r[2] for r in rows} == {"echo"} and not any(r[3] for r in rows)
    assert all(0 < r[1] < 1 for r in rows)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    (figure,) = summary["probe"]
    assert figure["method"] == "echo" and figure["upper_bounds"] == 0
    report = (result.run_dir / "report.html").read_text()
    assert 'id="probe"' in report and "estimate" not in report.split('id="probe"')[1].split("</section>")[0]


@pytest.mark.server
def test_run_by_top_logprobs_is_labelled_an_estimate(llama_server: LlamaServer, tmp_path: Path) -> None:
    from rich.console import Console

    from roi import console

    pilot = tiny_probe_pilot(llama_server.base_url, api_method="top_logprobs", max_calls_per_prompt=6)
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=1))
    rows = probe_rows(result)
    assert len(rows) == 4 and {r[2] for r in rows} == {"top_logprobs"}
    assert all(0 < r[1] <= 1 for r in rows)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["probe"][0]["method"] == "top_logprobs"
    section = (result.run_dir / "report.html").read_text().split('id="probe"')[1].split("</section>")[0]
    assert "estimate" in section
    recorder = Console(record=True, width=200)
    recorder.print(console.probe_table(result.probe))
    assert "estimate: top-logprob beam" in recorder.export_text()


@pytest.mark.server
def test_server_without_logprobs_skips_the_probe(llama_server: LlamaServer, tmp_path: Path) -> None:
    with FaultProxy(upstream_port=llama_server.port) as proxy:
        proxy.inject(Fault.NO_LOGPROBS, match='"logprobs"', times=1000)
        statuses: list[str] = []
        result = run_pilot(
            tiny_probe_pilot(proxy.base_url), RunOptions(out_dir=tmp_path, limit=1, status=statuses.append)
        )
    assert probe_rows(result) == [] and result.probe == []
    environment = json.loads(
        sqlite3.connect(result.db_path).execute("SELECT environment_json FROM runs").fetchone()[0]
    )  # fmt: skip
    assert "probe skipped" in environment["probe"]["llama"] and "logprobs" in environment["probe"]["llama"]
    assert any("probe skipped" in s for s in statuses)
    assert result.summary.cells  # the single-mode calls ran and were scored as usual


def test_plan_shows_the_probe_calls_and_cap() -> None:
    pilot = tiny_probe_pilot("http://127.0.0.1:9/v1", max_calls_per_prompt=7)
    (row,) = [r for r in plan_pilot(pilot).rows if r.mode == "probe"]
    # 2 prompts: echo's 2 calls each at least; at most 2 + 7 each, plus auto's 2 trial calls.
    assert row.calls == 2 * (2 + 7) + 2 and "4 to 20" in row.note and "max_calls_per_prompt" in row.note
    assert math.isfinite(row.prompt_tokens)
