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
TEACHER_FORCING = "teacher_forcing"  # local models; API models: "echo" or "top_logprobs" (roi/probe_api.py)
ESTIMATED = "top_logprobs"  # the one method whose figures are estimates (labelled wherever they show)


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
    from roi.backends.prefix_batching import softcap

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
    method: str = TEACHER_FORCING
    upper_bound: bool = False  # top-logprob beam: the answer left the listed tokens; P is at most this


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
    method: str = TEACHER_FORCING  # how P was read (docs/probe.md); "top_logprobs" figures are estimates
    upper_bounds: int = 0  # top-logprob rows where P is only bounded above

    @property
    def estimate(self) -> bool:
        return ESTIMATED in self.method.split("+")  # a resumed run may mix methods


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
    every = [r for rows in prompts.values() for r in rows]
    return MixtureFigures(
        model, mixture, len(prompts), points, mean_of(kls, seed), mean_of(renorm, seed),
        wilson(all_in, len(prompts)), mean_of(leftover, seed), width,
        "+".join(sorted({r.method for r in every})), sum(r.upper_bound for r in every),
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
        done = {(r[0], r[1]) for r in db.execute(
            "SELECT DISTINCT mixture, prompt_index FROM probe WHERE run_id = ? AND model = ?", (run_id, model.name)
        )}  # fmt: skip
        todo = [p for p in prompts if (p.mixture, p.index) not in done]
        if not todo:
            continue
        backend, close_after = backend_for(model)
        if model.backend == "openai":
            notes[model.name] = _probe_api(db, run_id, model.name, backend, todo, spec, status, close_after)
            continue
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


def _probe_api(
    db: Any, run_id: str, name: str, backend: Any, todo: list[ProbePrompt], spec: ProbeSpec, status: Any, close: bool
) -> str:
    from roi import probe_api  # imports the openai backend: only when an API model is probed

    try:
        note = probe_api.probe_model(db, run_id, name, backend, todo, spec, status)
    finally:
        if close:
            backend.close()
    if not note.startswith("probed"):
        status(f"Probe for {name}: {note}")
    return note


def stored_rows(db: Any, run_id: str) -> list[ProbeRow]:
    """The probe rows of a run, in the order they were planned (empty when the run had no probe)."""
    names = [f for f in ProbeRow.__dataclass_fields__]
    query = f"SELECT {', '.join(names)} FROM probe WHERE run_id = ? ORDER BY model, rowid"
    return [
        ProbeRow(**{**dict(zip(names, r, strict=True)), "in_beam": bool(r[10]), "upper_bound": bool(r[13])})
        for r in db.execute(query, (run_id,))
    ]


def stored_figures(db: Any, run_id: str, pilot: LoadedPilot) -> list[MixtureFigures]:
    rows = stored_rows(db, run_id)
    if not rows or pilot.spec.probe is None:
        return []
    return figures(rows, pilot.spec.probe.beam_width, seed=pilot.spec.seed)


# ---------------------------------------------------------------- the report's section (roi/report/sections.py)

_WORDS = {
    "en": {
        "intro": "The probe asks whether the model keeps several tasks alive at once, in proportion to their "
        "examples: prompts mix the examples of tasks that share one input, and the chart shows the probability "
        "the model gave each task's answer (mean over prompts, 95% interval) against that task's share of the "
        "examples. On the diagonal the model follows the mix exactly; below it, probability goes elsewhere.",
        "point": "With {mixture}: {answers}. All in-context answers were among its top {k} continuations in "
        "{all_in} of {n} prompts; {leftover} of the probability went to other answers.",
        "answer": "{task} {p} (share {share})",
        "note": "Teacher-forced probability of each answer, as in Xiong et al. (2024). KL(pi||p) is computed with "
        "p as measured (not renormalised, as the paper's code does) and renormalised over the mixture's tasks.",
        "title": "Share of examples vs probability of the task's answer (numbers: see the table)",
        "x": "share of examples", "y": "P(answer)",
        "method_teacher_forcing": "teacher forcing", "method_echo": "echo logprobs (API)",
        "method_top_logprobs": "top-logprob beam (API): estimate", "bounds": ", {n} upper bounds",
        "estimate": "Estimate: ",
        "estimate_note": "Figures read by the top-logprob beam are estimates: the API lists only the likeliest "
        "next tokens, so an answer that drops out of the list gets an upper bound instead of its probability.",
    },
    "ja": {
        "intro": "このプローブは、モデルが複数のタスクを同時に、例の比率どおりに保てるかを確かめます。同じ入力を持つ"
        "タスクの例を混ぜたプロンプトに対し、各タスクの答えにモデルが与えた確率（プロンプト平均と95%区間）を、"
        "そのタスクの例の比率に対して示します。対角線上なら比率どおり、下にあれば確率が他の答えへ流れています。",
        "point": "{mixture} のとき: {answers}。文脈内の全タスクの答えが上位{k}候補に入ったのは {n} 件中 {all_in} 件、"
        "確率の {leftover} は他の答えに向かいました。",
        "answer": "{task} {p}（比率 {share}）",
        "note": "各答えの確率は Xiong ら (2024) と同じ教師強制で求めています。KL(pi||p) は論文のコードと同じく p を"
        "正規化せずに計算し、混合内のタスクで正規化した値も示します。",
        "title": "例の比率とタスクの答えの確率（番号は下の表を参照）",
        "x": "例の比率", "y": "P(答え)",
        "method_teacher_forcing": "教師強制", "method_echo": "echo の対数確率（API）",
        "method_top_logprobs": "上位対数確率のビーム（API）：推定値", "bounds": "、上限値 {n} 件",
        "estimate": "推定値: ",
        "estimate_note": "上位対数確率のビームで求めた値は推定値です。API は確率の高い次トークンしか返さないため、"
        "一覧から外れた答えには確率そのものではなく上限値を記録しています。",
    },
}  # fmt: skip


def report_section(db: Any, run_id: str, pilot: Any, lang: str) -> dict[str, Any] | None:
    """Plain data for templates/sections/probe.html.j2 (None when the run has no probe rows)."""
    rows = stored_rows(db, run_id)
    if not rows or pilot.probe is None:
        return None
    words = _WORDS.get(lang, _WORDS["en"])
    figs = figures(rows, pilot.probe.beam_width, seed=pilot.seed)
    sentences = [_sentence(f, words) for f in figs if sum(t.share > 0 for t in f.tasks) >= 2]
    numbers = {(i, t.task): n for n, (i, t) in enumerate(chart_points(figs), 1)}
    table = [
        {"number": numbers.get((i, t.task), ""), "model": f.model, "mixture": f.mixture, "task": t.task,
         "share": f"{t.share:.2f}", "p": _fmt(t.probability), "kl": _fmt(f.kl),
         "kl_renormalised": _fmt(f.kl_renormalised), "n": f.prompts, "method": _method(f, words)}
        for i, f in enumerate(figs) for t in f.tasks
    ]  # fmt: skip
    return {
        "intro": words["intro"],
        "sentences": sentences,
        "rows": table,
        "note": words["note"],
        "estimate_note": words["estimate_note"] if any(f.estimate for f in figs) else None,
        "figures": [_plain(f) for f in figs],
        "charts": {"calibration": calibration_chart(figs, words)},
    }


def _method(f: MixtureFigures, words: dict[str, str]) -> str:
    label = " + ".join(words.get(f"method_{m}", m) for m in f.method.split("+"))
    return label + (words["bounds"].format(n=f.upper_bounds) if f.upper_bounds else "")


def _fmt(m: Mean) -> str:
    return "n/a" if m.value is None else f"{m.value:.3f} [{m.low:.3f}, {m.high:.3f}]"


def _plain(f: MixtureFigures) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(f)


def _sentence(f: MixtureFigures, words: dict[str, str]) -> str:
    answers = ", ".join(
        words["answer"].format(task=t.task, p=f"{t.probability.value or 0:.0%}", share=f"{t.share:.0%}")
        for t in f.tasks
        if t.share > 0
    )
    prefix = words["estimate"] if f.estimate else ""
    return prefix + words["point"].format(
        mixture=f.mixture, answers=answers, k=f.beam_width, all_in=f.all_in_beam.k, n=f.all_in_beam.n,
        leftover=f"{f.leftover.value or 0:.0%}",
    )  # fmt: skip


def calibration_chart(figs: Sequence[MixtureFigures], words: dict[str, str]) -> Any:
    """Share (x) vs mean probability (y) on 0..1, one numbered marker per task and mixture (the numbers
    are keyed in the table under the chart: names would pile up near the origin, where minority and
    absent tasks sit), interval whiskers, the diagonal drawn."""
    from roi.report.charts import Canvas

    size, left, top = 420, 60, 30
    c = Canvas(words["title"], width=left + size + 40, height=top + size + 50)

    def sx(v: float) -> float:
        return left + v * size

    def sy(v: float) -> float:
        return top + (1 - v) * size

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        c.line(sx(tick), sy(0), sx(tick), sy(1), "grid")
        c.line(sx(0), sy(tick), sx(1), sy(tick), "grid")
        c.text(sx(tick), sy(0) + 14, f"{tick:.2f}", "tick", "middle")
        c.text(sx(0) - 6, sy(tick) + 4, f"{tick:.2f}", "tick", "end")
    c.line(sx(0), sy(0), sx(1), sy(1), "limit")  # the diagonal: probability = share
    c.text(sx(0.5), sy(0) + 32, words["x"], "tick", "middle")
    c.text(left - 44, sy(0.5), words["y"], "tick", "middle", rotate=-90)
    placed: list[tuple[float, float]] = []
    for number, (i, t) in enumerate(chart_points(figs), 1):
        p = t.probability
        assert p.value is not None and p.low is not None and p.high is not None
        c.line(sx(t.share), sy(p.low), sx(t.share), sy(p.high), "axis")
        c.rect(sx(t.share) - 4, sy(p.value) - 4, 8, 8, f"s{i % 2}")
        x, y = _free_spot(placed, sx(t.share) + 7, sy(p.value) + 4, len(str(number)) * 7.0, (sy(1) + 10, sy(0) - 3))
        if abs(y - sy(p.value) - 4) > 6:  # moved off its marker: a leader line says whose number it is
            c.line(sx(t.share) + 4, sy(p.value), x - 2, y - 4, "axis")
        c.text(x, y, str(number), "tick probe-label")
    return c


def chart_points(figs: Sequence[MixtureFigures]) -> list[tuple[int, TaskPoint]]:
    """(mixture index, point) for every point the chart draws, in the order of its numbers."""
    return [(i, t) for i, f in enumerate(figs) for t in f.tasks if t.probability.value is not None]


def _free_spot(
    placed: list[tuple[float, float]], x: float, y: float, width: float, bounds: tuple[float, float]
) -> tuple[float, float]:
    """The first spot right of (x, y), then stepping up and down a line at a time (within `bounds`, so
    labels stay above the x axis's ticks), whose label box overlaps no label placed before; records it."""
    line = 14.0  # an 11px label's line box in Chromium (tests/test_probe.py measures it)
    for step in range(60):
        dy = line * ((step + 1) // 2) * (-1 if step % 2 else 1)
        ty = min(max(y + dy, bounds[0]), bounds[1])
        tx = x if step == 0 else x + 8  # a moved label sits further right, its leader line ending before it
        if all(abs(ty - py) >= line or abs(tx - px) >= max(width, 14.0) + 2 for px, py in placed):
            placed.append((tx, ty))
            return tx, ty
    placed.append((x, y))
    return x, y
