"""The superposition probe (issue 5): the paper's calibration measurement, exact and cheap.

Xiong et al. (PAPER.md) fill a prompt with `input -> output` examples drawn from several tasks in
given shares `pi`, append one query every task can answer, and read the model's probability of each
task's answer by teacher forcing: `P(y_k | prompt)`, the product of the next-token probabilities of
`y_k`'s tokens. Their code runs one full forward pass over `prompt + y_k` per candidate;
roi/backends/local/teacher_forcing.py runs the prompt once and scores every candidate from its KV cache, equal to theirs
within float32 rounding. This module builds the prompts, runs them for a run's models (API models through
roi/probe_api.py), stores the rows and computes the figures per mixture; roi/report/probe_section.py
draws them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from roi import store
from roi.backends.local.teacher_forcing import score_candidates, top_answers
from roi.pilot import LoadedPilot, Pilot, ProbeSpec, probe_inputs
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
    beams = set(top_answers(model, tokenizer, prompt.text, max(width, 1), longest + 1))
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
    spec = _spec(pilot)
    prompts = build_prompts(pilot)
    notes: dict[str, str] = {}
    for model in pilot.spec.models:
        if spec.models is not None and model.name not in spec.models:
            continue
        done = store.probed_prompts(db, run_id, model.name)
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
            release = getattr(backend, "release_output_screen", None)
            if release is not None:  # teacher forcing reads the whole output layer: no half copy beside it
                release()
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
    names = list(ProbeRow.__dataclass_fields__)
    return [
        ProbeRow(**{**r, "in_beam": bool(r["in_beam"]), "upper_bound": bool(r["upper_bound"])})
        for r in store.probe_rows(db, run_id, names)
    ]


def stored_figures(db: Any, run_id: str, pilot: Pilot) -> list[MixtureFigures]:
    """The probe figures of a run (empty when it had no probe)."""
    rows = stored_rows(db, run_id)
    if not rows or pilot.probe is None:
        return []
    return figures(rows, pilot.probe.beam_width, seed=pilot.seed)
