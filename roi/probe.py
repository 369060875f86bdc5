"""The superposition probe (issue 5): the paper's calibration measurement, exact and cheap.

Xiong et al. (PAPER.md) fill a prompt with `input -> output` examples drawn from several tasks in
given shares `pi`, append one query every task can answer, and read the model's probability of each
task's answer by teacher forcing: `P(y_k | prompt)`, the product of the next-token probabilities of
`y_k`'s tokens. Their code runs one full forward pass over `prompt + y_k` per candidate. Here the
prompt runs once, its KV cache is repeated for the K candidates, and the candidates' remaining tokens
run as one right-padded batch; logits are computed only where a candidate token is scored. The result
equals theirs within float32 rounding (tests/test_probe.py compares on the embedded model).

Tokenisation follows the reference: `prompt + candidate` is tokenised jointly, and the candidate's
tokens are those after the longest common prefix with the prompt's own tokens. A candidate whose first
token merges with the prompt's end (`"->"` + `" Paris"` or `"-> "` + `"Paris"`) is thus scored over the
merged token as well, exactly as a full pass over the joint text would.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from roi.pilot import LoadedPilot, ProbeSpec, probe_inputs
from roi.stats import Rate, bootstrap_mean_interval, wilson

SEPARATOR = " -> "


# ---------------------------------------------------------------- prompts


@dataclass(frozen=True)
class ProbePrompt:
    """One random prompt of a mixture: the examples in shares `shares`, the query, every task's answer."""

    mixture: str
    index: int
    shares: dict[str, float]  # every probe task; 0 for tasks without examples in this prompt
    text: str
    query: str
    answers: dict[str, str]  # task -> its answer to the query (the candidates, " " + answer)


def mixture_label(mixture: dict[str, float]) -> str:
    """A stable, readable name: `number_en 0.50 + number_fr 0.50`."""
    return " + ".join(f"{t} {s:.2f}" for t, s in mixture.items() if s > 0)


def normalised(mixture: dict[str, float], tasks: Sequence[str]) -> dict[str, float]:
    total = sum(mixture.values())
    return {t: mixture.get(t, 0.0) / total for t in tasks}


def example_counts(shares: dict[str, float], n: int) -> dict[str, int]:
    """`n` examples split by `shares`, largest remainder first (so 0.5/0.5 of 5 is 3/2, in task order)."""
    exact = {t: s * n for t, s in shares.items()}
    counts = {t: math.floor(v) for t, v in exact.items()}
    by_remainder = sorted(shares, key=lambda t: (-(exact[t] - counts[t]), list(shares).index(t)))
    for t in by_remainder[: n - sum(counts.values())]:
        counts[t] += 1
    return counts


def build_prompts(pilot: LoadedPilot) -> list[ProbePrompt]:
    """Every prompt of every mixture, deterministic for the probe's seed."""
    spec = _spec(pilot)
    pool = probe_inputs(pilot.tasks, spec.tasks)
    seed = pilot.spec.seed if spec.seed is None else spec.seed
    prompts: list[ProbePrompt] = []
    for mixture in spec.mixtures:
        shares = normalised(mixture, spec.tasks)
        label = mixture_label(shares)
        rng = random.Random(f"{seed}:{label}")  # a string seed is stable across processes
        prompts += [
            _prompt(pool, shares, label, i, spec.examples_per_prompt, rng) for i in range(spec.prompts_per_mixture)
        ]
    return prompts


def _spec(pilot: LoadedPilot) -> ProbeSpec:
    if pilot.spec.probe is None:
        raise ValueError(f"pilot {pilot.name} has no probe section")
    return pilot.spec.probe


def _prompt(
    pool: list[tuple[str, dict[str, str]]], shares: dict[str, float], label: str, index: int, n: int, rng: random.Random
) -> ProbePrompt:
    queries = [p for p in pool if len(set(p[1].values())) == len(p[1])]  # an answer names one task
    query, answers = rng.choice(queries)
    others = [p for p in pool if p[0] != query]
    picked = rng.sample(others, n)
    labels = [t for t, c in example_counts(shares, n).items() for _ in range(c)]
    rng.shuffle(labels)
    lines = [f"{x}{SEPARATOR}{a[t]}" for (x, a), t in zip(picked, labels, strict=True)]
    text = "\n".join([*lines, f"{query}{SEPARATOR.rstrip()}"])
    return ProbePrompt(label, index, shares, text, query, answers)


def candidate(answer: str) -> str:
    """The continuation scored for an answer: the separator's space, then the answer."""
    return SEPARATOR[len(SEPARATOR.rstrip()) :] + answer


# ---------------------------------------------------------------- scoring


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
        logprobs = torch.zeros(len(splits), dtype=torch.float32)
        first_lp = torch.log_softmax(first.float(), dim=-1)
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
    logits = _lm_head(model, picked).float()
    token_lp = torch.log_softmax(logits, dim=-1)[torch.arange(len(targets), device=device), torch.tensor(targets)]
    sums = torch.zeros(len(tails), dtype=torch.float32, device=device)
    sums.index_add_(0, torch.tensor(rows, device=device), token_lp)
    return sums.cpu()


def _lm_head(model: Any, hidden: Any) -> Any:
    """The model's output layer on the picked hidden states only (final soft-capping as the model does)."""
    import torch

    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def reference_scores(model: Any, tokenizer: Any, prompt: str, candidates: Sequence[str]) -> list[float]:
    """The paper's method, kept for the benchmark: one full forward pass over `prompt + candidate` per
    candidate, all logits, product of the softmax probabilities of the candidate's tokens."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for cand in candidates:
            split = joint_split(tokenizer, prompt, cand)
            probs = torch.softmax(model(input_ids=torch.tensor([split.ids], device=device)).logits[0].float(), -1)
            p = torch.ones((), dtype=torch.float32)
            for pos in range(split.start, len(split.ids)):
                p = p * probs[pos - 1, split.ids[pos]].cpu()
            out.append(float(p))
    return out


# ---------------------------------------------------------------- the model's own top continuations


def beam_answers(model: Any, tokenizer: Any, prompt: str, width: int, max_new_tokens: int) -> list[str]:
    """The model's `width` best continuations by beam search, each ended at a newline and stripped."""
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
            num_beams=width,
            num_return_sequences=width,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
        )
    texts = tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
    return [str(t).split("\n", 1)[0].strip() for t in texts]


# ---------------------------------------------------------------- one prompt, end to end


@dataclass(frozen=True)
class ProbeRow:
    """One task's answer on one prompt (a row of the store's `probe` table)."""

    model: str
    mixture: str
    prompt_index: int
    task: str
    share: float
    query: str
    answer: str
    logprob: float
    probability: float
    answer_tokens: int
    in_beam: bool
    prompt_tokens: int


def probe_prompt(model_name: str, model: Any, tokenizer: Any, prompt: ProbePrompt, beam_width: int) -> list[ProbeRow]:
    tasks = list(prompt.answers)
    scored = score_candidates(model, tokenizer, prompt.text, [candidate(prompt.answers[t]) for t in tasks])
    width = beam_width or sum(1 for s in prompt.shares.values() if s > 0)
    longest = max(s.tokens for s in scored)
    beams = set(beam_answers(model, tokenizer, prompt.text, max(width, 1), longest + 1))
    prompt_tokens = len(tokenizer(prompt.text, add_special_tokens=True).input_ids)
    return [
        ProbeRow(
            model_name, prompt.mixture, prompt.index, t, prompt.shares[t], prompt.query, prompt.answers[t],
            s.logprob, s.probability, s.tokens, prompt.answers[t].strip() in beams, prompt_tokens,
        )
        for t, s in zip(tasks, scored, strict=True)
    ]  # fmt: skip


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class Mean:
    """A mean over prompts with its 95% percentile-bootstrap interval and n."""

    n: int
    value: float | None
    low: float | None
    high: float | None


def mean_of(values: Sequence[float], seed: int = 0) -> Mean:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return Mean(0, None, None, None)
    low, high = bootstrap_mean_interval(arr, seed=seed, resamples=2000)
    return Mean(int(arr.size), float(arr.mean()), low, high)


@dataclass(frozen=True)
class TaskPoint:
    """One point of the calibration chart: a task's share of the examples vs its mean probability."""

    task: str
    share: float
    probability: Mean
    in_beam: Rate


@dataclass(frozen=True)
class MixtureFigures:
    model: str
    mixture: str
    prompts: int
    tasks: list[TaskPoint]
    kl: Mean  # KL(pi || p), p NOT renormalised: the paper's F.kl_div(p.log(), pi, reduction="sum")
    kl_renormalised: Mean  # KL(pi || p / sum of p over the mixture's tasks)
    all_in_beam: Rate  # prompts where every task with examples in the prompt is among the beams
    leftover: Mean  # 1 - sum of p over the mixture's tasks: mass on any other continuation
    beam_width: int


def kl_pair(shares: dict[str, float], logprobs: dict[str, float]) -> tuple[float, float]:
    """(KL(pi || p), KL(pi || p renormalised)) over the tasks with a positive share."""
    present = [t for t, s in shares.items() if s > 0]
    raw = sum(shares[t] * (math.log(shares[t]) - logprobs[t]) for t in present)
    log_total = _logsumexp([logprobs[t] for t in present])
    return raw, raw + log_total  # renormalising subtracts log(sum p) from every log p_k


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def figures(rows: Sequence[ProbeRow], beam_width: int, seed: int = 0) -> list[MixtureFigures]:
    """Per model and mixture: the calibration points, KL both ways, the top-K check, leftover mass."""
    groups: dict[tuple[str, str], dict[int, list[ProbeRow]]] = {}
    for row in rows:
        groups.setdefault((row.model, row.mixture), {}).setdefault(row.prompt_index, []).append(row)
    return [_mixture(model, mixture, prompts, beam_width, seed) for (model, mixture), prompts in groups.items()]


def _mixture(
    model: str, mixture: str, prompts: dict[int, list[ProbeRow]], beam_width: int, seed: int
) -> MixtureFigures:
    first = next(iter(prompts.values()))
    shares = {r.task: r.share for r in first}
    kls, renorm, leftover, all_in = [], [], [], 0
    for rows in prompts.values():
        raw, norm = kl_pair(shares, {r.task: r.logprob for r in rows})
        kls.append(raw)
        renorm.append(norm)
        leftover.append(1.0 - sum(r.probability for r in rows if r.share > 0))
        all_in += all(r.in_beam for r in rows if r.share > 0)
    points = [
        TaskPoint(
            task,
            share,
            mean_of([r.probability for rows in prompts.values() for r in rows if r.task == task], seed),
            wilson(sum(r.in_beam for rows in prompts.values() for r in rows if r.task == task), len(prompts)),
        )
        for task, share in shares.items()
    ]
    width = beam_width or sum(1 for s in shares.values() if s > 0)
    return MixtureFigures(
        model, mixture, len(prompts), points, mean_of(kls, seed), mean_of(renorm, seed),
        wilson(all_in, len(prompts)), mean_of(leftover, seed), width,
    )  # fmt: skip


# ---------------------------------------------------------------- a run's probe (called by the runner)


def run(db: Any, run_id: str, pilot: LoadedPilot, backend_for: Any, status: Any = lambda s: None) -> dict[str, str]:
    """Probe every chosen model, storing each prompt's rows as it finishes (a resumed run skips stored
    prompts). `backend_for(model_spec)` returns `(backend, close_after)`. Returns a note per model."""
    from roi import store

    spec = _spec(pilot)
    prompts = build_prompts(pilot)
    notes: dict[str, str] = {}
    for model in pilot.spec.models:
        if spec.models is not None and model.name not in spec.models:
            continue
        if model.backend != "transformers":
            notes[model.name] = "probe skipped: only local transformers models are probed for now"
            status(f"Probe skipped for {model.name}: {notes[model.name]}")
            continue
        done = {(r[0], r[1]) for r in db.execute(
            "SELECT DISTINCT mixture, prompt_index FROM probe WHERE run_id = ? AND model = ?", (run_id, model.name)
        )}  # fmt: skip
        todo = [p for p in prompts if (p.mixture, p.index) not in done]
        if not todo:
            continue
        backend, close_after = backend_for(model)
        if not all(hasattr(backend, a) for a in ("model", "tokenizer")):
            notes[model.name] = "probe skipped: the backend exposes no local model and tokenizer"
            status(f"Probe skipped for {model.name}: {notes[model.name]}")
            continue
        try:
            status(f"Probing {model.name}: {len(todo)} prompts")
            for prompt in todo:
                rows = probe_prompt(model.name, backend.model, backend.tokenizer, prompt, spec.beam_width)
                store.record_probe(db, run_id, rows)
            notes[model.name] = f"probed {len(prompts)} prompts"
        finally:
            if close_after:
                backend.close()
    return notes


def stored_rows(db: Any, run_id: str) -> list[ProbeRow]:
    """The probe rows of a run, in the order they were planned (empty when the run had no probe)."""
    names = [f for f in ProbeRow.__dataclass_fields__]
    query = f"SELECT {', '.join(names)} FROM probe WHERE run_id = ? ORDER BY model, rowid"
    return [
        ProbeRow(**{**dict(zip(names, r, strict=True)), "in_beam": bool(r[10])}) for r in db.execute(query, (run_id,))
    ]


def stored_figures(db: Any, run_id: str, pilot: LoadedPilot) -> list[MixtureFigures]:
    rows = stored_rows(db, run_id)
    if not rows or pilot.spec.probe is None:
        return []
    return figures(rows, pilot.spec.probe.beam_width, seed=pilot.spec.seed)
