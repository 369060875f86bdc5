"""Teacher forcing (roi/backends/local/teacher_forcing.py) on the real embedded model: the probe's probabilities equal
the paper's reference computation, written independently here; tokenisation pitfalls; beam answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roi.backends.local import teacher_forcing
from roi.pilot import load_pilot
from roi.probe import prompts as probe_prompts
from tests.conftest import PILOTS

EXAMPLE = PILOTS / "superposition-probe.yaml"


@pytest.fixture(scope="module")
def lm(embedded_model_dir: Path) -> Iterator[tuple[Any, Any]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir), dtype=torch.float32, local_files_only=True)
    yield model.eval(), tokenizer


def paper_reference(model: Any, tokenizer: Any, prompt: str, cand: str) -> float:
    """Written here independently of the local teacher forcing: a full forward pass over prompt + candidate, the product
    of the softmax probabilities of the candidate's tokens (joint tokenisation, split where the joint
    ids stop agreeing with the prompt's own ids)."""
    import torch

    prompt_ids = tokenizer(prompt).input_ids
    ids = tokenizer(prompt + cand).input_ids
    split = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids, strict=False)) if a != b), len(prompt_ids))
    split = min(split, len(ids) - 1)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0], dim=-1)
    result = 1.0
    for pos in range(split, len(ids)):
        result *= float(probs[pos - 1, ids[pos]])
    return result


# float32 tolerance. The reference is not reproducible to 1e-5 itself: appending one token after the
# candidate (which changes no scored probability mathematically) moves its result by up to 1.3e-5
# relative on the example pilot's prompts (BENCHMARKS.md, "Probe"). The float64 test below shows the
# computation is the same: there the two agree to 1e-9.
FLOAT32_REL = 1e-4


def assert_matches(
    lm: tuple[Any, Any], prompt: str, candidates: list[str], rel: float = FLOAT32_REL
) -> list[teacher_forcing.Scored]:
    model, tokenizer = lm
    fast = teacher_forcing.score_candidates(model, tokenizer, prompt, candidates)
    for cand, scored in zip(candidates, fast, strict=True):
        expected = paper_reference(model, tokenizer, prompt, cand)
        assert expected > 0
        assert scored.probability == pytest.approx(expected, rel=rel), cand
    return fast


def test_same_computation_as_the_reference_in_float64(embedded_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir), dtype=torch.float64, local_files_only=True)
    lm64 = (model.eval(), tokenizer)
    assert_matches(lm64, CAPITALS + " ", ["Rome", "Roma", "R"], rel=1e-9)  # merged across the seam
    assert_matches(lm64, CAPITALS, [" Rome", " Rome is", " Romeo and Juliet"], rel=1e-9)


CAPITALS = "France -> Paris\nJapan -> Tokyo\nGermany -> Berlin\nItaly ->"


def test_example_pilot_prompts_match_the_reference(lm: tuple[Any, Any]) -> None:
    prompts = probe_prompts.build_prompts(load_pilot(EXAMPLE))
    for prompt in prompts[-1:]:  # a three-task prompt
        candidates = [probe_prompts.candidate(a) for a in prompt.answers.values()]
        scored = assert_matches(lm, prompt.text, candidates)
        assert sum(s.probability for s in scored) <= 1.0 + 1e-6


def test_multi_token_and_prefix_candidates(lm: tuple[Any, Any]) -> None:
    _, tokenizer = lm
    candidates = [" Rome", " Rome is", " Ro", " R", " Romeo and Juliet", " Europe"]
    scored = assert_matches(lm, CAPITALS, candidates)
    assert scored[1].tokens > scored[0].tokens == 1 and scored[4].tokens >= 3
    # A prefix continuation can only be as likely as the word it starts, and an extension less so.
    assert scored[1].probability < scored[0].probability
    assert len(tokenizer(" Romeo and Juliet", add_special_tokens=False).input_ids) >= 3


def test_candidate_merging_with_the_prompt_end(lm: tuple[Any, Any]) -> None:
    _, tokenizer = lm
    # The prompt ends in a space, the candidate has none: jointly they form one token ("▁Rome").
    split = teacher_forcing.joint_split(tokenizer, CAPITALS + " ", "Rome")
    prompt_ids = tokenizer(CAPITALS + " ").input_ids
    assert split.start < len(prompt_ids), "the space token of the prompt is re-tokenised with the answer"
    assert tokenizer.convert_ids_to_tokens(split.ids[split.start :]) == ["▁Rome"]
    merged = assert_matches(lm, CAPITALS + " ", ["Rome", "Roma", "Europe", "R"])
    plain = assert_matches(lm, CAPITALS, [" Rome", " Roma", " Europe", " R"])
    assert [m.probability for m in merged] == pytest.approx([p.probability for p in plain], rel=FLOAT32_REL)
    # No space at all: a different, less likely token sequence, scored exactly too.
    bare = assert_matches(lm, CAPITALS, ["Rome", " Rome"])
    assert bare[0].probability < bare[1].probability


def test_prompt_longer_than_the_sliding_window(lm: tuple[Any, Any]) -> None:
    model, tokenizer = lm
    window = model.config.get_text_config().sliding_window
    lines = [f"{n} -> {n + 1}" for n in range(1, 400)]
    prompt = "\n".join(lines[: window // 3] + lines[window // 3 :][:100]) + "\n17 ->"
    assert len(tokenizer(prompt).input_ids) > window
    assert_matches(lm, prompt, [" 18", " 18 and"])


def test_top_answers_are_the_most_probable_by_total_probability(lm: tuple[Any, Any]) -> None:
    import torch

    model, tokenizer = lm
    ranked = teacher_forcing.ranked_answers(model, tokenizer, CAPITALS, width=3, max_new_tokens=4)
    answers = [a for a, _ in ranked]
    assert answers == teacher_forcing.top_answers(model, tokenizer, CAPITALS, width=3, max_new_tokens=4)
    assert len(answers) == 3 and answers[0] == "Rome"  # the likeliest answer first
    assert all("\n" not in a and a == a.strip() for a in answers) and len(set(answers)) == 3
    logprobs = [lp for _, lp in ranked]
    assert logprobs == sorted(logprobs, reverse=True)  # by total probability
    # Each answer's probability is its tokens' product, as teacher forcing computes it (newline included).
    forced = teacher_forcing.score_candidates(model, tokenizer, CAPITALS, [f" {a}\n" for a in answers])
    assert [s.logprob for s in forced] == pytest.approx(logprobs, abs=1e-4)
    # No length penalty: a wide beam search ranking by total probability finds nothing more probable.
    ids = torch.tensor([tokenizer(CAPITALS).input_ids])
    newline = tokenizer("\n", add_special_tokens=False).input_ids
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=24, num_return_sequences=24,
            do_sample=False, max_new_tokens=4, eos_token_id=newline, length_penalty=0.0, output_scores=True,
            return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    texts = tokenizer.batch_decode(out.sequences[:, ids.shape[1] :], skip_special_tokens=True)
    beams = [t.split("\n", 1)[0].strip() for t, s in zip(texts, out.sequences_scores.tolist(), strict=True)]
    best = [b for b, s in zip(beams, out.sequences_scores.tolist(), strict=True) if s > logprobs[-1] + 1e-4]
    assert set(best) <= set(answers)


def test_one_token_answers_are_the_next_tokens_in_order_of_probability(lm: tuple[Any, Any]) -> None:
    """With answers one token long the top K are the prompt's most probable next tokens (distinct once
    stripped): 20 of them need the first tokens kept wider than the search's first 16."""
    import torch

    model, tokenizer = lm
    ranked = teacher_forcing.ranked_answers(model, tokenizer, CAPITALS, width=20, max_new_tokens=1)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([tokenizer(CAPITALS).input_ids])).logits[0, -1].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    expected: dict[str, float] = {}
    for token in logprobs.argsort(descending=True)[:200].tolist():
        text = tokenizer.decode([token], skip_special_tokens=True).split("\n", 1)[0].strip()
        if text and text not in expected:
            expected[text] = float(logprobs[token])
    assert [a for a, _ in ranked] == list(expected)[:20]
    assert [lp for _, lp in ranked] == pytest.approx(list(expected.values())[:20], abs=1e-4)
