"""The probe's prompts: examples of the probe's tasks in a mixture's shares, then one query every task
can answer; each task's answer to it is a candidate continuation."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from roi.pilot import LoadedPilot, ProbeSpec, probe_inputs

SEPARATOR = " -> "


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
    spec = probe_spec(pilot)
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


def probe_spec(pilot: LoadedPilot) -> ProbeSpec:
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
