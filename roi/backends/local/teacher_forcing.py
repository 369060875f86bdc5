"""Teacher forcing for the superposition probe (roi/probe/): the probability a local model gives
each candidate answer after a prompt, the paper's reference computation it must equal, and the model's
own most probable answers, found exactly by a best-first search (`top_answers`).

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

import copy
import heapq
import itertools
import math
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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
    """A new cache holding the prefix's keys and values, and the logits predicting the token after it.
    The prefix runs once for consecutive calls on the same prompt (the probe scores the candidates,
    then searches the top answers): the last one is kept, and callers get copies (they extend theirs)."""
    import torch
    from transformers import DynamicCache

    key = (id(model), tuple(ids))
    if _LAST_PREFIX.get("key") != key or _LAST_PREFIX["model"]() is not model:
        _LAST_PREFIX.clear()
        cache = DynamicCache(config=model.config)
        out = model(input_ids=torch.tensor([ids], device=device), cache=cache, use_cache=True, logits_to_keep=1)
        _LAST_PREFIX.update(key=key, model=weakref.ref(model), cache=cache, logits=out.logits[0, -1])
    return copy.deepcopy(_LAST_PREFIX["cache"]), _LAST_PREFIX["logits"]


_LAST_PREFIX: dict[str, Any] = {}


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
    """The model's output layer on the picked hidden states only (final soft-capping as the model does;
    on CPU as one matrix product whose kernel suits a few rows)."""
    from roi.backends.local.output_layer import output_logits

    return output_logits(model, hidden)


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


@dataclass
class _Node:
    """A continuation of the prompt in the search: its tokens, total log-probability and, once expanded,
    its most probable next tokens (log-probabilities descending)."""

    tokens: tuple[int, ...]
    logprob: float
    next_tokens: list[int] = field(default_factory=list)
    next_logprobs: list[float] = field(default_factory=list)
    resume: int = 0  # the rank of the next token to offer
    every_token: bool = False  # the whole vocabulary is kept: nothing more to fetch


def _bound(node: _Node) -> float:
    """The probability (log) of the most probable continuation not offered yet: the next token at rank
    `resume`, or at the last rank kept (a bound on those not kept)."""
    return node.logprob + node.next_logprobs[min(node.resume, len(node.next_logprobs) - 1)]


_NEXT = 16  # next tokens kept per expanded continuation; four times more each time the search needs more
_BATCH = 8  # continuations expanded in one forward pass (each holds a copy of the prompt's cache)
_MAX_EXPANSIONS = 512  # a bound on the work per prompt (docs/probe.md)

# Queue entries, by kind: an ended answer; an open continuation, to expand; the next tokens of an
# expanded continuation from a rank on (bounded by the probability of the token at that rank).
_ENDED, _OPEN, _NEXT_TOKENS = 0, 1, 2


def top_answers(model: Any, tokenizer: Any, prompt: str, width: int, max_new_tokens: int) -> list[str]:
    """The model's `width` most probable distinct answers to the prompt, ranked by total probability
    (the product of their tokens' probabilities, no length penalty), each ended at a newline (or the end
    of sequence, or `max_new_tokens`) and stripped.

    Found exactly by best-first search: continuations wait in a queue ordered by probability, which
    only falls as tokens are added, so an ended answer leaves the queue only when nothing in it could
    still end more probable. A continuation's next tokens come from one forward pass over the prompt's
    kept cache (up to `_BATCH` continuations per pass) and enter the queue lazily, best first. Answers
    that read the same once stripped count once, at their most probable spelling."""
    return [text for text, _ in ranked_answers(model, tokenizer, prompt, width, max_new_tokens)]


def ranked_answers(model: Any, tokenizer: Any, prompt: str, width: int, max_new_tokens: int) -> list[tuple[str, float]]:
    """`top_answers` with each answer's log-probability (its most probable spelling, newline included)."""
    answers: dict[str, float] = {}
    for text, logprob in _ended_answers(model, tokenizer, prompt, max_new_tokens):
        if text and text not in answers:
            answers[text] = logprob
        if len(answers) == width:
            break
    return list(answers.items())


def _ended_answers(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> Iterator[tuple[str, float]]:
    """Ended continuations' stripped text and log-probability, most probable first (see `top_answers`)."""
    import torch

    device = next(model.parameters()).device
    ids = [int(i) for i in tokenizer(prompt, add_special_tokens=True).input_ids]
    eos = model.generation_config.eos_token_id
    ends = set([eos] if isinstance(eos, int) else list(eos or []))
    queue: list[tuple[float, int, int, _Node]] = []  # (-probability bound, order, kind, node)
    counter = itertools.count()  # ties leave in the order they came

    def push(bound: float, kind: int, node: _Node) -> None:
        heapq.heappush(queue, (-bound, next(counter), kind, node))

    def offer(node: _Node) -> None:
        """The node's next token at its `resume` rank as a continuation, and the ranks after it."""
        if node.resume >= len(node.next_tokens):
            if not node.every_token:
                push(_bound(node), _OPEN, node)  # expanded again, keeping more next tokens
            return
        token = node.next_tokens[node.resume]
        child = _Node((*node.tokens, token), node.logprob + node.next_logprobs[node.resume])
        ended = token in ends or "\n" in tokenizer.decode([token]) or len(child.tokens) >= max_new_tokens
        push(child.logprob, _ENDED if ended else _OPEN, child)
        node.resume += 1
        push(_bound(node), _NEXT_TOKENS, node)

    with torch.inference_mode():
        root = _Node((), 0.0)
        _, logits = _prefix(model, ids, device)
        first = torch.log_softmax(_upcast(logits).double(), dim=-1)  # the root's next tokens, kept wider on demand
        _keep_next(root, first)
        push(_bound(root), _NEXT_TOKENS, root)
        expansions = 0
        while queue and expansions <= _MAX_EXPANSIONS:
            waiting: list[_Node] = []
            while queue and len(waiting) < _BATCH and not (queue[0][2] == _ENDED and waiting):
                _, _, kind, node = heapq.heappop(queue)
                if kind == _ENDED:
                    text = tokenizer.decode(list(node.tokens), skip_special_tokens=True)
                    yield text.split("\n", 1)[0].strip(), node.logprob
                elif kind == _OPEN:
                    waiting.append(node)
                else:
                    offer(node)
            if waiting:
                expansions += len(waiting)
                continuations = [n for n in waiting if n.tokens]
                if len(continuations) < len(waiting):  # the root, kept wider: its next tokens are the prompt's
                    _keep_next(root, first)
                if continuations:
                    _expand(model, ids, continuations, device)
                for node in waiting:
                    push(_bound(node), _NEXT_TOKENS, node)


def _keep_next(node: _Node, logprobs: Any) -> None:
    """Keep the node's most probable next tokens: `_NEXT` at first, four times more at each re-expansion."""
    keep = min(max(_NEXT, 4 * len(node.next_tokens)), logprobs.shape[-1])
    values, tokens = logprobs.topk(keep)
    node.next_logprobs, node.next_tokens = values.tolist(), tokens.tolist()
    node.every_token = keep == logprobs.shape[-1]


def _expand(model: Any, ids: list[int], nodes: list[_Node], device: Any) -> None:
    """Next-token log-probabilities of each continuation: its tokens fed right-padded over copies of the
    prompt's kept cache (causal attention never lets a real token see the padding after it)."""
    import torch

    cache, _ = _prefix(model, ids, device)
    width = max(len(n.tokens) for n in nodes)
    fed = torch.tensor([list(n.tokens) + [n.tokens[-1]] * (width - len(n.tokens)) for n in nodes], device=device)
    cache.batch_repeat_interleave(len(nodes))
    hidden = model.get_decoder()(input_ids=fed, cache=cache, use_cache=True).last_hidden_state
    last = hidden[torch.arange(len(nodes), device=device), torch.tensor([len(n.tokens) - 1 for n in nodes])]
    logprobs = torch.log_softmax(_upcast(_lm_head(model, last)).double(), dim=-1)
    for node, row in zip(nodes, logprobs, strict=True):
        _keep_next(node, row)
