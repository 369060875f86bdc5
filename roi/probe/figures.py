"""The probe's figures per model and mixture, from its stored rows: each task's mean probability against
its share of the examples (with intervals), KL(pi || p) both ways, the top-K check and the leftover mass."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from roi import store
from roi.backends import TEACHER_FORCING, TOP_LOGPROBS
from roi.pilot import Pilot
from roi.stats import Rate, bootstrap_mean_interval, wilson

ESTIMATED = TOP_LOGPROBS  # the one method whose figures are estimates (labelled wherever they show)


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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
        model=model,
        mixture=mixture,
        prompts=len(prompts),
        tasks=points,
        kl=mean_of(kls, seed),
        kl_renormalised=mean_of(renorm, seed),
        all_in_beam=wilson(all_in, len(prompts)),
        leftover=mean_of(leftover, seed),
        beam_width=width,
        method="+".join(sorted({r.method for r in every})),
        upper_bounds=sum(r.upper_bound for r in every),
    )


def stored_rows(db: sqlite3.Connection, run_id: str) -> list[ProbeRow]:
    """The probe rows of a run, in the order they were planned (empty when the run had no probe)."""
    names = list(ProbeRow.__dataclass_fields__)
    return [
        ProbeRow(**{**r, "in_beam": bool(r["in_beam"]), "upper_bound": bool(r["upper_bound"])})
        for r in store.probe_rows(db, run_id, names)
    ]


def stored_figures(db: sqlite3.Connection, run_id: str, pilot: Pilot) -> list[MixtureFigures]:
    """The probe figures of a run (empty when it had no probe)."""
    rows = stored_rows(db, run_id)
    if not rows or pilot.probe is None:
        return []
    return figures(rows, pilot.probe.beam_width, seed=pilot.seed)
