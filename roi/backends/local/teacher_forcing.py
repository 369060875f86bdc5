"""Teacher forcing for the superposition probe (roi/probe.py): the probability a local model gives
each candidate answer after a prompt, the paper's reference computation it must equal, and the model's
own top continuations by beam search.

The prompt runs once, its KV cache is repeated for the K candidates, and the candidates' remaining
tokens run as one right-padded batch; logits are computed only where a candidate token is scored. The
result equals the reference (one full forward pass over `prompt + candidate` per candidate) within
float32 rounding (tests/backends/local/test_teacher_forcing.py compares on the embedded model).

Tokenisation follows the reference: `prompt + candidate` is tokenised jointly, and the candidate's
tokens are those after the longest common prefix with the prompt's own tokens. A candidate whose first
token merges with the prompt's end (`"->"` + `" Paris"` or `"-> "` + `"Paris"`) is thus scored over the
merged token as well, exactly as a full pass over the joint text would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Split:
    """A candidate tokenised jointly with its prompt: `ids` of prompt + candidate, scored from `start`."""

    ids: list[int]
    start: int


def joint_split(tokenizer: Any, prompt: str, cand: str) -> Split:
    """Tokenise `prompt + cand` jointly; the candidate's tokens start after the longest common prefix
    with the prompt's own tokens (earlier than the prompt's end when the two merge across the seam)."""
    prompt_ids = list(tokenizer(prompt, add_special_tokens=True).input_ids)
    ids = list(tokenizer(prompt + cand, add_special_tokens=True).input_ids)
    start = 0
    while start < min(len(prompt_ids), len(ids) - 1) and prompt_ids[start] == ids[start]:
        start += 1
    return Split([int(i) for i in ids], start)


@dataclass(frozen=True)
class Scored:
    logprob: float  # natural log of P(candidate | prompt)
    tokens: int  # tokens scored

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


def score_candidates(model: Any, tokenizer: Any, prompt: str, candidates: Sequence[str]) -> list[Scored]:
    """`P(candidate | prompt)` for each candidate by teacher forcing: one pass over the shared prompt
    tokens, its cache repeated per candidate, the candidates' tokens as one right-padded batch."""
    import torch

    splits = [joint_split(tokenizer, prompt, c) for c in candidates]
    shared = min(s.start for s in splits)  # all rows agree on the prompt's first `shared` tokens
    if shared < 1:
        raise ValueError("the prompt must keep at least one token of its own (a BOS token does)")
    device = next(model.parameters()).device
    with torch.inference_mode():
        cache, first = _prefix(model, splits[0].ids[:shared], device)
        tails = [s.ids[shared:] for s in splits]
        rows, positions, targets = _scored_positions(splits, shared)
        logprobs = torch.zeros(len(splits), dtype=torch.float64)
        first_lp = torch.log_softmax(_upcast(first), dim=-1)
        for r, tail in enumerate(tails):
            if splits[r].start == shared:  # the tail's first token is scored, predicted by the prefix
                logprobs[r] += first_lp[tail[0]].cpu()
        if rows:
            logprobs += _tail_logprobs(model, cache, tails, rows, positions, targets, device)
    return [Scored(float(lp), len(s.ids) - s.start) for lp, s in zip(logprobs.tolist(), splits, strict=True)]


def _prefix(model: Any, ids: list[int], device: Any) -> tuple[Any, Any]:
    """The prefix's cache and the logits predicting the token after it."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    out = model(input_ids=torch.tensor([ids], device=device), cache=cache, use_cache=True, logits_to_keep=1)
    return cache, out.logits[0, -1]


def _scored_positions(splits: list[Split], shared: int) -> tuple[list[int], list[int], list[int]]:
    """(row, fed position, target token) for every scored token after a tail's first: fed position j
    of row r holds tail token j and predicts tail token j + 1."""
    rows: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    for r, split in enumerate(splits):
        tail = split.ids[shared:]
        for j in range(max(1, split.start - shared), len(tail)):
            rows.append(r)
            positions.append(j - 1)
            targets.append(tail[j])
    return rows, positions, targets


def _tail_logprobs(
    model: Any,
    cache: Any,
    tails: list[list[int]],
    rows: list[int],
    positions: list[int],
    targets: list[int],
    device: Any,
) -> Any:
    """Sum per row of the log-probabilities of the scored tail tokens after the first."""
    import torch

    # Right padding: each row's real tokens sit at the same positions as in a batch of one, and causal
    # attention never lets them see the padding after them, so no attention mask is needed.
    width = max(len(t) - 1 for t in tails)
    fed = torch.tensor([t[:-1] + [t[-1]] * (width - len(t) + 1) for t in tails], device=device)
    cache.batch_repeat_interleave(len(tails))
    hidden = model.get_decoder()(input_ids=fed, cache=cache, use_cache=True).last_hidden_state
    picked = hidden[torch.tensor(rows, device=device), torch.tensor(positions, device=device)]
    logits = _upcast(_lm_head(model, picked))
    token_lp = torch.log_softmax(logits, dim=-1)[torch.arange(len(targets), device=device), torch.tensor(targets)]
    sums = torch.zeros(len(tails), dtype=torch.float64, device=device)
    sums.index_add_(0, torch.tensor(rows, device=device), token_lp.double())
    return sums.cpu()


def _upcast(logits: Any) -> Any:
    """Half-precision logits to float32 for the softmax; float32 and float64 stay as they are."""
    import torch

    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _lm_head(model: Any, hidden: Any) -> Any:
    """The model's output layer on the picked hidden states only (final soft-capping as the model does)."""
    from roi.backends.local.output_layer import softcap

    return softcap(model, model.get_output_embeddings()(hidden))


def reference_scores(model: Any, tokenizer: Any, prompt: str, candidates: Sequence[str]) -> list[float]:
    """The paper's method, kept for the benchmark: one full forward pass over `prompt + candidate` per
    candidate, all logits, product of the softmax probabilities of the candidate's tokens."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for cand in candidates:
            split = joint_split(tokenizer, prompt, cand)
            logits = model(input_ids=torch.tensor([split.ids], device=device)).logits[0]
            probs = torch.softmax(_upcast(logits), -1)
            p = torch.ones((), dtype=probs.dtype)
            for pos in range(split.start, len(split.ids)):
                p = p * probs[pos - 1, split.ids[pos]].cpu()
            out.append(float(p))
    return out


# ---------------------------------------------------------------- the model's own top continuations


def beam_answers(model: Any, tokenizer: Any, prompt: str, width: int, max_new_tokens: int) -> list[str]:
    """The model's `width` best distinct continuations by beam search, each ended at a newline and
    stripped. Beams that differ only after the newline, or in spacing, read as the same answer, so the
    search keeps twice as many beams and the best `width` distinct answers are returned."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=True).input_ids], device=device)
    newline = tokenizer("\n", add_special_tokens=False).input_ids
    eos = model.generation_config.eos_token_id
    stops = ([eos] if isinstance(eos, int) else list(eos or [])) + (newline if len(newline) == 1 else [])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            num_beams=2 * width,
            num_return_sequences=2 * width,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
        )
    texts = tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
    answers = [str(t).split("\n", 1)[0].strip() for t in texts]  # best first, as generate returns them
    return list(dict.fromkeys(a for a in answers if a))[:width]
