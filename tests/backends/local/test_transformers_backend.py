"""The fast path (shared prefix, batched suffixes) against the naive one (`model.generate` per call) on
the real embedded model: every answer and token count must be the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from roi.backends import GenerationRequest
from roi.backends.local.precision import cpu_description
from roi.backends.local.prefix_batching import PrefixBatcher, Row, _Charges, draft, shared_length
from roi.backends.local.transformers_backend import TransformersBackend
from roi.backends.text import cut_at_stop
from roi.pilot import load_pilot
from roi.prompts import build_calls
from tests.conftest import PILOTS, REPO


def demo_requests() -> list[GenerationRequest]:
    """Two single-mode items of every demo task and two mixed calls. The mixed answers are capped at
    24 tokens to keep the test short; their prompts (~505 tokens) plus the answer still run past
    Gemma 3's 512-token sliding window, the case where a wrong cache layout would change answers."""
    pilot = load_pilot(PILOTS / "superposition-demo.yaml")
    calls = build_calls(pilot, limit=2)
    requests = []
    for call in calls:
        budget = call.max_new_tokens if call.mode == "single" else min(call.max_new_tokens, 24)
        requests.append(dataclasses.replace(call.request(call.call_key), max_new_tokens=budget))
    return requests


STATUS: list[str] = []  # what the backend told the run's header while loading


@pytest.fixture(scope="module")
def backend(embedded_model_dir: Path) -> TransformersBackend:
    # bfloat16, the looser of the two screens (more candidates), whatever this machine would choose.
    spec = load_pilot(PILOTS / "superposition-demo.yaml").spec.models[0].model_copy(update={"precision": "bfloat16"})
    return TransformersBackend(spec, REPO, STATUS.append)


def test_fast_path_gives_the_naive_answers_and_token_counts(backend: TransformersBackend) -> None:
    assert backend._batcher.output.screen is not None  # the screened output layer is what is compared
    requests = demo_requests()
    fast = {r.key: r for r in backend.generate(requests)}
    naive = {r.key: backend.generate_naive(r) for r in requests}
    assert set(fast) == {r.key for r in requests}
    for key, reference in naive.items():
        got = fast[key]
        assert reference.text, f"{key}: the naive path produced no answer"
        assert (got.text, got.prompt_tokens, got.output_tokens) == (
            reference.text,
            reference.prompt_tokens,
            reference.output_tokens,
        ), key
        assert got.latency_s > 0
    # The capital task's items have answers a working model gets right: the comparison is not vacuous.
    assert "Athens" in (fast["single:capital:1"].text or "") or "Lisbon" in (fast["single:capital:2"].text or "")


def test_mixed_calls_stop_once_every_query_is_answered(backend: TransformersBackend) -> None:
    """Both paths stop where the request's completeness check first holds, at the same token. With
    `PromptCall.complete` the parsed answers are those of the text run to its budget. Whether Gemma 3
    270M keeps writing after its last answer depends on the CPU's arithmetic, so the stop is also
    forced early (after the first line), which every CPU reaches before the model's own end."""
    from roi.prompts import parse_mixed

    pilot = load_pilot(PILOTS / "superposition-demo.yaml")
    calls = [c for c in build_calls(pilot, limit=12) if c.call_key in ("mixed:g0:6", "mixed:g0:10")]
    requests = [c.request(c.call_key) for c in calls]
    early = [dataclasses.replace(r, key=r.key + ":early", complete=lambda text: "\n" in text.strip()) for r in requests]
    fast = {r.key: r for r in backend.generate(requests + early)}
    for call, request, cut in zip(calls, requests, early, strict=True):
        longer = backend.generate_naive(dataclasses.replace(request, complete=None))
        assert longer.text is not None and longer.output_tokens is not None
        for req in (request, cut):
            reference, got = backend.generate_naive(req), fast[req.key]
            assert (got.text, got.output_tokens) == (reference.text, reference.output_tokens), req.key
            assert got.text is not None and got.output_tokens is not None
            assert longer.text.startswith(got.text) and got.output_tokens <= longer.output_tokens, req.key
        assert parse_mixed(longer.text, call.queries) == parse_mixed(fast[request.key].text or "", call.queries)
        assert all(a is not None for a in parse_mixed(fast[request.key].text or "", call.queries))
        stopped = fast[cut.key]
        assert stopped.output_tokens is not None and stopped.output_tokens < longer.output_tokens, cut.key


def test_shared_length() -> None:
    rows = [Row((2, 5, 6, 7), 4, ()), Row((2, 5, 6, 9, 9), 4, ()), Row((2, 5, 6), 4, ())]
    # At least one token of each row stays to be fed; a sliding window caps the shared part.
    assert shared_length(rows, None) == 2
    assert shared_length(rows[:2], None) == 3
    assert shared_length(rows[:2], 3) == 2


def test_describe_says_how_calls_are_run(backend: TransformersBackend) -> None:
    facts = backend.describe()
    assert facts["batching"] == "prefix-shared batches"
    assert int(facts["threads"]) >= 1
    precision = backend._batcher.output.precision
    assert facts["output_layer"].startswith(f"{precision} (")  # stored with the run's environment
    assert f"Output layer: {facts['output_layer']}" in STATUS  # and shown in the run's header
    assert facts["cpu"] == cpu_description()


def test_results_keep_request_keys_for_a_lone_request(backend: TransformersBackend) -> None:
    request = dataclasses.replace(demo_requests()[0], key="alone")
    (result,) = list(backend.generate([request]))
    assert result.key == "alone"
    assert result.text == backend.generate_naive(request).text


def test_rows_of_several_prefixes_start_together(backend: TransformersBackend) -> None:
    """The single-mode rows of every task (four prefixes) start in one batch; the mixed rows, whose own
    part is much longer, start apart (later they join the running batch as rows leave it)."""
    from collections import deque

    requests = demo_requests()
    rows = [backend._row(r, i // 2) for i, r in enumerate(requests)]
    own = [len(r.ids) - shared_length([x for x in rows if x.group == r.group], 512) for r in rows]
    pending = deque(sorted(range(len(rows)), key=lambda i: own[i]))
    first = backend._batcher._admissible(rows, None, pending, own)
    assert sorted(first) == [i for i, r in enumerate(requests) if r.key.startswith("single:")]


@pytest.mark.parametrize(("speculate", "share"), [(True, True), (False, True), (True, False)])
def test_continuous_batching_gives_the_naive_answers_with_a_tight_budget(
    backend: TransformersBackend, speculate: bool, share: bool
) -> None:
    """With a budget of a few rows, mixed rows join a batch already decoding (left-padded, merged) as
    others finish, and few-row steps verify prompt-lookup drafts; answers are still the naive path's,
    with prefixes held once per batch and with each row holding its own copy (the path of models where
    `shared_prefix.enable` fails its check)."""
    requests = demo_requests()
    budget = (32 if share else 40) * 2**20  # measured: rows join a running batch (merge) at these
    batcher = PrefixBatcher(
        backend.model, backend.tokenizer, backend.device, budget_bytes=budget, speculate=speculate, share_prefixes=share
    )
    assert batcher.shared == share
    rows = [backend._row(r, i // 2) for i, r in enumerate(requests)]
    calls = {"_merge": 0, "_verify": 0}
    for name in calls:
        original = getattr(batcher, name)

        def counting(*args: object, _name: str = name, _original: object = original) -> object:
            calls[_name] += 1
            return _original(*args)  # type: ignore[operator]

        setattr(batcher, name, counting)
    done = {i: g.tokens for chunk in batcher.complete(rows) for i, g in chunk.items()}
    assert calls["_merge"] >= 1
    assert (calls["_verify"] >= 1) == speculate
    for i, request in enumerate(requests):
        text = backend.tokenizer.decode(done[i], skip_special_tokens=True)
        assert cut_at_stop(text, request.stop) == backend.generate_naive(request).text, request.key


def test_rows_hold_their_own_tokens_and_the_bank_each_prefix_once(backend: TransformersBackend) -> None:
    """With prefixes held once, a batch of the two mixed rows (prompts of ~500 tokens) has a cache as
    wide as their own parts and answers, and a bank holding their 453-token prefix once."""
    requests = [r for r in demo_requests() if r.key.startswith("mixed:")]
    batcher: PrefixBatcher = backend._batcher
    assert batcher.shared
    rows = [backend._row(r, 0) for r in requests]
    prefix = shared_length(rows, batcher.window)
    started: list[tuple[Any, int, int, int]] = []  # (bank, mask width, cache width, most slots) at start
    original = batcher._start

    def start(*args: Any) -> Any:
        batch = original(*args)
        started.append((batch.bank, batch.mask.shape[1], batch.cache.layers[0].keys.shape[2], batch.longest))
        return batch

    batcher._start = start  # type: ignore[method-assign]
    try:
        list(batcher.complete(rows))
    finally:
        del batcher._start
    ((bank, mask_width, cache_width, longest),) = started
    assert prefix > 400 and bank.length == prefix and bank.kv[0][0].shape[2] == prefix
    own = max(len(r.ids) for r in rows) - prefix
    assert mask_width == cache_width == own  # the cache holds the own parts only
    assert longest == own + max(r.max_new_tokens for r in rows)


def test_a_finished_batch_is_freed_before_the_next_is_built(backend: TransformersBackend) -> None:
    """With `max_batch=1` every call runs as its own batch; when one is built no earlier batch (and so
    no earlier cache) may still be alive: holding one made support-triage peak at two batches' memory."""
    import weakref

    requests = demo_requests()[:4]
    batcher = PrefixBatcher(backend.model, backend.tokenizer, backend.device, max_batch=1)
    rows = [backend._row(r, i // 2) for i, r in enumerate(requests)]
    built: list[weakref.ref[object]] = []
    alive_when_starting: list[int] = []
    original = batcher._start

    def start(*args: Any) -> Any:
        alive_when_starting.append(sum(ref() is not None for ref in built))
        batch = original(*args)
        built.append(weakref.ref(batch))
        return batch

    batcher._start = start  # type: ignore[method-assign]
    done = {i for chunk in batcher.complete(rows) for i in chunk}
    assert done == set(range(len(rows))) and len(built) == len(rows)
    assert alive_when_starting == [0] * len(rows)


def test_draft_is_what_followed_the_latest_occurrence_of_the_tail() -> None:
    assert draft([5, 6, 7, 9, 5, 6, 7], 2) == [9, 5]  # the 3-token tail 5 6 7 was followed by 9 5
    assert draft([1, 2, 3, 2, 3, 4, 2, 3], 3) == [4, 2, 3]  # latest occurrence of 2 3 wins
    assert draft([1, 2, 3, 4], 2) == []  # nothing repeats
    assert draft([8, 1, 2, 8], 5) == [1, 2, 8]  # shorter than asked at the end of the sequence


MIXED_STOP = ("\n\n", "\nQ[", "\nA[3]")
STOP_CASES = [
    # (prompt text, answer text, stop strings)
    ("Q[1] (capital): France\nA[1] (capital) France ->", " Paris\nA[2] (upper) x -> X\n\nQ[3]", MIXED_STOP),
    ("Q[1] (capital): France\nA[1] (capital) France ->", " Paris\nA[2] (upper) x -> X\nA[3] (en) 4", MIXED_STOP),
    ("Input: hello\nOutput:", " HELLO\nInput: next", ("\n",)),
    ("Input: hello\n", "\nOutput: x", ("\n\n",)),  # the stop string straddles prompt and answer
    ("Input: hello\n\n", "Output: x\n", ("\n\n",)),  # in the prompt only: no stop
    ("Input: a", " b c d e f", ("\n",)),  # never stops
]


@pytest.mark.parametrize(("prompt", "answer", "stop"), STOP_CASES)
def test_stop_check_agrees_with_transformers_stop_strings(
    backend: TransformersBackend, prompt: str, answer: str, stop: tuple[str, ...]
) -> None:
    """roi's text check stops at the same token as `generate(stop_strings=...)`'s StopStringCriteria,
    token by token, on the real tokenizer."""
    import torch
    from transformers import StopStringCriteria

    tok = backend.tokenizer
    ids = tuple(tok(prompt, add_special_tokens=True).input_ids)
    answer_ids = list(tok(answer, add_special_tokens=False).input_ids)  # as if generated after the prompt
    criteria = StopStringCriteria(tok, list(stop))
    batcher: PrefixBatcher = backend._batcher
    row = Row(ids, 64, stop)
    theirs = [bool(criteria(torch.tensor([list(ids) + answer_ids[: n + 1]]), None)[0]) for n in range(len(answer_ids))]
    ours = [batcher._stopped(row, answer_ids[: n + 1]) for n in range(len(answer_ids))]
    assert ours == theirs
    assert any(ours) == (prompt not in ("Input: a", "Input: hello\n\n"))  # the others stop somewhere


def test_charges_split_a_pass_by_tokens_fed() -> None:
    charges = _Charges(3)
    charges.split(0.6, {0: 1.0, 2: 2.0})  # a join: row 0 fed 1 token, row 2 fed 2
    charges.split(0.3, {0: 1.0, 1: 1.0, 2: 1.0})  # a decoding step: one token each
    assert charges.spent == pytest.approx([0.3, 0.1, 0.5])


def test_machine_time_is_the_batch_shared_out(backend: TransformersBackend) -> None:
    """Every call is charged a share of the passes it took part in; together the shares are the batch's
    machine time less the passes that only time a call alone."""
    import time

    requests = demo_requests()
    started = time.perf_counter()
    results = list(backend.generate(requests))
    wall = time.perf_counter() - started
    machine = [r.machine_s for r in results]
    assert all(m is not None and m > 0 for m in machine)
    assert sum(m or 0 for m in machine) < wall
    naive = backend.generate_naive(requests[0])
    assert naive.machine_s == naive.latency_s  # a call alone: its wall time is its machine time
