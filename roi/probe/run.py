"""A run's probe: every chosen model's backend scores every prompt's candidates, and each prompt's rows
are stored as soon as they are read (a resumed run skips stored prompts)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable

from roi import store
from roi.backends import Backend, CannotScore, ContinuationQuery, ContinuationScores, ScoringFailed
from roi.pilot import LoadedPilot, ModelSpec, ProbeSpec
from roi.probe.figures import ProbeRow
from roi.probe.prompts import ProbePrompt, build_prompts, candidate, probe_spec

# A model's backend for the probe, and whether the probe closes it afterwards (an injected one stays open).
BackendFor = Callable[[ModelSpec], tuple[Backend, bool]]
Status = Callable[[str], None]
LATE = "probe stopped at the run deadline"  # a model's note when the deadline cut its probe short


def run(
    db: sqlite3.Connection,
    run_id: str,
    pilot: LoadedPilot,
    backend_for: BackendFor,
    status: Status = lambda s: None,
    late: Callable[[], bool] = lambda: False,
) -> tuple[dict[str, str], bool]:
    """Probe every chosen model, storing each prompt's rows as it finishes, until `late()` (the run's
    deadline) says to stop between two prompts. Returns a note per model, and whether every prompt was
    probed (a resumed run probes the rest)."""
    spec = probe_spec(pilot)
    prompts = build_prompts(pilot)
    notes: dict[str, str] = {}
    finished = True
    for model in pilot.spec.models:
        if spec.models is not None and model.name not in spec.models:
            continue
        done = store.probed_prompts(db, run_id, model.name)
        todo = [p for p in prompts if (p.mixture, p.index) not in done]
        if not todo:
            continue
        if late():
            notes[model.name] = f"{LATE} before it started ({len(todo)} prompts left)"
            finished = False
            continue
        backend, close_after = backend_for(model)
        try:
            notes[model.name] = probe_model(db, run_id, model.name, backend, todo, spec, status, late)
            finished = finished and not notes[model.name].startswith(LATE)
        finally:
            if close_after:
                backend.close()
        if not notes[model.name].startswith("probed"):
            status(f"Probe for {model.name}: {notes[model.name]}")
    return notes, finished


def probe_model(
    db: sqlite3.Connection,
    run_id: str,
    name: str,
    backend: Backend,
    todo: list[ProbePrompt],
    spec: ProbeSpec,
    status: Status,
    late: Callable[[], bool] = lambda: False,
) -> str:
    """Probe `todo` on one model, storing each prompt's rows, until `late()`; returns the model's note."""
    status(f"Probing {name}: {len(todo)} prompts")
    methods: set[str] = set()
    done = 0
    try:
        for prompt in todo:
            if late():
                return f"{LATE} after {done} of {len(todo)} prompts"
            scores = backend.score_continuations(query_for(prompt, spec))
            store.record_probe(db, run_id, rows_of(name, prompt, scores))
            methods.add(scores.method)
            done += 1
    except CannotScore as err:
        return f"probe skipped: {err}"
    except ScoringFailed as err:
        return f"probe stopped after {done} of {len(todo)} prompts: {err}"
    return f"probed {len(todo)} prompts by {' + '.join(sorted(methods))}"


def query_for(prompt: ProbePrompt, spec: ProbeSpec) -> ContinuationQuery:
    """Every task's answer as a candidate; the top-K check's K is `beam_width`, else the number of tasks
    with examples in the prompt."""
    return ContinuationQuery(
        prompt.text,
        tuple(candidate(answer) for answer in prompt.answers.values()),
        spec.beam_width or sum(1 for s in prompt.shares.values() if s > 0),
        api_method=spec.api_method,
        top_logprobs=spec.top_logprobs,
        max_calls=spec.max_calls_per_prompt,
    )


def rows_of(model: str, prompt: ProbePrompt, scores: ContinuationScores) -> list[ProbeRow]:
    top = set(scores.top)
    return [
        ProbeRow(
            model=model,
            mixture=prompt.mixture,
            prompt_index=prompt.index,
            task=task,
            share=prompt.shares[task],
            query=prompt.query,
            answer=answer,
            logprob=s.logprob,
            probability=math.exp(s.logprob),
            answer_tokens=s.tokens,
            in_beam=answer.strip() in top,
            prompt_tokens=scores.prompt_tokens,
            method=scores.method,
            upper_bound=s.upper_bound,
        )
        for (task, answer), s in zip(prompt.answers.items(), scores.candidates, strict=True)
    ]
