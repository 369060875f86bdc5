"""What a run will cost before it runs (`roi plan`), and the spending limit of `roi run --max-cost`.

Token counts come from the model's own tokenizer when it is on disk (local models), else from a stated
approximation (about 4 characters per token, the usual figure for English; other languages need more).
Output tokens are estimated from the expected answers (what a model that answers right and stops would
write); the ceiling uses each call's full answer budget. Time comes from earlier runs of the same pilot
in the store; without one it is unknown, never guessed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roi import store
from roi.backends import Backend, GenerationRequest, GenerationResult, preflight, traits
from roi.backends.openai_logprobs import planned_calls
from roi.costs import call_cost_usd, result_cost_usd
from roi.errors import RoiError
from roi.pilot import LoadedPilot, ModelSpec
from roi.probe.prompts import build_prompts, candidate
from roi.prompts import PromptCall, answer_head, build_calls, task_groups
from roi.redaction import safe_url

CHARS_PER_TOKEN = 4.0
TEMPLATE_TOKENS = 32  # chat-template markup and special tokens a server adds around a prompt

Counter = Callable[[str], int]


@dataclass(frozen=True, kw_only=True)
class PlanRow:
    model: str
    mode: str
    calls: int
    items: int
    prompt_tokens: int
    output_tokens: int  # if every answer is the expected one
    max_output_tokens: int  # every call uses its whole answer budget
    counted_by: str  # "its tokenizer" or "approx. 4 chars/token"
    cost_usd: float | None  # None: unknown (no price, or a local model with no earlier run)
    max_cost_usd: float | None
    time_s: float | None
    time_basis: str
    note: str = ""  # replaces the token and time note (the probe's call count and cap)
    at_most: bool = False  # the figures are a ceiling: the calls may not be made at all (the measured plan)


@dataclass(frozen=True)
class Plan:
    pilot: str
    item_limit: int | None
    rows: list[PlanRow]
    mixed_groups: list[list[str]] = field(default_factory=list)  # tasks sharing mixed calls, pilot order


# ---------------------------------------------------------------- roi plan


def plan_pilot(pilot: LoadedPilot, limit: int | None = None, history: Path | None = None) -> Plan:
    """Calls, tokens, cost and time per model and mode, without calling any model. A model that cannot
    be used (e.g. not on disk) is an error here as in `roi run`."""
    preflight(pilot)
    calls = build_calls(pilot, limit)
    latencies = past_latencies(history, pilot.name, pilot.spec.models) if history else {}
    rows = []
    for model in pilot.spec.models:
        counter, counted_by = token_counter(model, pilot.path.parent)
        for mode in ("single", "mixed"):
            chosen = [c for c in calls if c.mode == mode]
            if chosen:
                rows.append(_row(model, mode, chosen, counter, counted_by, latencies.get((model.name, mode))))
        if rows and rows[-1].mode == "mixed" and pilot.spec.modes.single.enabled and len(pilot.tasks) >= 3:
            rows.append(_plan_row(rows[-1]))
        if pilot.spec.probe is not None and (pilot.spec.probe.models is None or model.name in pilot.spec.probe.models):
            rows.append(_probe_row(pilot, model, counter, counted_by))
    groups = [[t.spec.name for t in g] for g in task_groups(pilot)] if pilot.spec.modes.mixed.enabled else []
    return Plan(pilot.name, limit, rows, groups)


def _plan_row(mixed: PlanRow) -> PlanRow:
    """The measured plan's calls (roi/measured_plan.py): made only when the grouping the run recommends
    drops a task, so unknown before the run; a group of fewer tasks needs at most the mixed calls, with
    shorter prompts."""
    note = (
        "only if the run's recommended grouping drops a task: its group then runs in calls of its own, "
        "at most as many as the mixed calls, with shorter prompts"
    )
    return dataclasses.replace(mixed, mode="plan", at_most=True, note=note)


def _probe_row(pilot: LoadedPilot, model: ModelSpec, count: Counter, counted_by: str) -> PlanRow:
    """The probe's calls. Local: one prompt pass (and the top-K search) per prompt. API: echo's one call
    per candidate, plus the top-logprob beam and top-K check, capped per prompt."""
    spec = pilot.spec.probe
    assert spec is not None
    prompts = build_prompts(pilot)
    if not traits(model).remote:
        tokens = sum(count(p.text) for p in prompts)
        note = f"{len(prompts)} prompts, one pass each for all {len(spec.tasks)} answers, plus the top-K search"
        return PlanRow(
            model=model.name, mode="probe", calls=len(prompts), items=len(prompts), prompt_tokens=tokens,
            output_tokens=0, max_output_tokens=0, counted_by=counted_by, cost_usd=None, max_cost_usd=None,
            time_s=None, time_basis="", note=note,
        )  # fmt: skip
    least, most = planned_calls(
        len(spec.tasks), spec.api_method, spec.max_calls_per_prompt, len(prompts), model.endpoint == "completions"
    )
    per_call = max(count(p.text + candidate(a)) for p in prompts for a in p.answers.values())
    cost = call_cost_usd(model, machine_s=None, prompt_tokens=per_call * most, output_tokens=most)
    note = (
        f"{len(prompts)} prompts by {spec.api_method}, {least:,} to {most:,} one-token calls; at most "
        f"{spec.max_calls_per_prompt} top-logprob calls per prompt (max_calls_per_prompt), tokens counted by "
        f"{counted_by}, USD is the ceiling"
    )
    return PlanRow(
        model=model.name, mode="probe", calls=most, items=len(prompts), prompt_tokens=per_call * most,
        output_tokens=most, max_output_tokens=most, counted_by=counted_by, cost_usd=cost, max_cost_usd=cost,
        time_s=None, time_basis="", note=note,
    )  # fmt: skip


def _row(
    model: ModelSpec,
    mode: str,
    calls: list[PromptCall],
    count: Counter,
    counted_by: str,
    latency: tuple[float, int] | None,
) -> PlanRow:
    prompt = sum(count(c.prompt) for c in calls)
    output = sum(count(ideal_output(c)) for c in calls)
    ceiling = sum(c.max_new_tokens for c in calls)
    time_s, basis = None, "unknown (no earlier run of this pilot)"
    if latency is not None and model.batch:
        # A batch call's latency is its job's turnaround, and one job holds all the calls.
        time_s, basis = latency[0], f"mean turnaround of earlier batch jobs ({latency[1]} calls)"
    elif latency is not None:
        # A local call's figure is its machine time in its batch: calls of a batch do not add up their
        # latencies, and the machine time is what a local model is paid by.
        parallel = model.max_concurrency if traits(model).remote else 1
        time_s = latency[0] * len(calls) / parallel
        what = "call" if latency[1] == 1 else "calls"
        if not traits(model).remote:
            what = ("call's" if latency[1] == 1 else "calls'") + " machine time"
        basis = f"mean of {latency[1]:,} earlier {what}" + (f", {parallel} in flight" if parallel > 1 else "")
    machine_s = None if traits(model).billed_by_tokens else time_s

    def cost(out_tokens: int) -> float | None:
        return call_cost_usd(model, machine_s=machine_s, prompt_tokens=prompt, output_tokens=out_tokens)

    items = sum(len(c.queries) for c in calls)
    return PlanRow(
        model=model.name, mode=mode, calls=len(calls), items=items, prompt_tokens=prompt, output_tokens=output,
        max_output_tokens=ceiling, counted_by=counted_by, cost_usd=cost(output), max_cost_usd=cost(ceiling),
        time_s=time_s, time_basis=basis,
    )  # fmt: skip


def ideal_output(call: PromptCall) -> str:
    """What the model writes when every answer is the expected one and it stops where it should."""
    first = call.queries[0].item.output
    if call.mode == "single":
        return f" {first}\n"
    rest = [f"{answer_head(n, q.task, q.item.input)} {q.item.output}\n" for n, q in enumerate(call.queries[1:], 2)]
    return f" {first}\n" + "".join(rest) + "\n"


def approx_tokens(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def token_counter(model: ModelSpec, base_dir: Path) -> tuple[Counter, str]:
    """The model's tokenizer when it is on disk (without converting anything), else the approximation."""
    path = local_tokenizer_file(model, base_dir)
    if path is None:
        return approx_tokens, f"approx. {CHARS_PER_TOKEN:g} chars/token"
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    return (lambda text: len(tokenizer.encode(text).ids)), "its tokenizer"


def local_tokenizer_file(model: ModelSpec, base_dir: Path) -> Path | None:
    if traits(model).remote:
        return None
    from roi.backends.local import local_models

    if model.model == local_models.EMBEDDED:
        try:
            gguf, digest = local_models.embedded_gguf()
        except RoiError:
            return None
        folder = local_models.cache_dir() / "models" / f"{gguf.stem}-{digest[:16]}"
    else:
        folder = Path(model.model).expanduser()
        folder = folder if folder.is_absolute() else base_dir / folder
    candidate = folder / "tokenizer.json"
    return candidate if candidate.is_file() else None


SAME_MODEL = ("backend", "model", "device", "dtype", "base_url", "endpoint")  # what makes calls comparable


def past_latencies(db_path: Path, pilot: str, models: Sequence[ModelSpec]) -> dict[tuple[str, str], tuple[float, int]]:
    """Mean seconds and count of finished live calls per (model, mode) over earlier runs of `pilot`: machine
    time where it was measured (local models), else latency; only from runs where the model of that name was
    the same model (a renamed or swapped model is not evidence). Planning writes nothing."""
    past = store.past_calls(db_path, pilot)
    if past is None:
        return {}
    # the store keeps base URLs as safe_url shows them (no user-info or secret query values)
    wanted = {m.name: _identity(m.model_dump() | {"base_url": m.base_url and safe_url(m.base_url)}) for m in models}
    same = {
        (run_id, m["name"])
        for run_id, spec in past.pilots.items()
        for m in json.loads(spec).get("models", [])
        if wanted.get(m["name"]) == _identity(m)
    }
    found: dict[tuple[str, str], list[float]] = {}
    for run_id, model, mode, seconds in past.seconds:
        if (run_id, model) in same:
            found.setdefault((model, mode), []).append(seconds)
    return {key: (sum(v) / len(v), len(v)) for key, v in found.items()}


def _identity(model: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(model.get(k) for k in SAME_MODEL)


# ---------------------------------------------------------------- roi run --max-cost


def check_budgetable(models: Sequence[ModelSpec]) -> None:
    """A spending limit needs every model's spend to be known."""
    unpriced = [m.name for m in models if (m.price if traits(m).billed_by_tokens else m.cost) is None]
    if unpriced:
        raise RoiError(
            f"--max-cost needs a price for every model; no price for: {', '.join(unpriced)} "
            "(set price: for API models, cost.usd_per_hour for local ones)"
        )


@dataclass
class Budget:
    """The run's spending limit. A call is sent only when the spend so far plus the most it can cost
    stays within the limit; calls that would not fit are skipped and counted."""

    limit_usd: float
    spent_usd: float = 0.0
    skipped: int = 0
    # prompt tokens per UTF-8 byte, highest seen per model: bounds later calls' prompts closely
    tokens_per_byte: dict[str, float] = field(default_factory=dict)
    # costliest call seen per model: local models are paid by time, which no count bounds in advance
    costliest_usd: dict[str, float] = field(default_factory=dict)

    def ceiling_usd(self, spec: ModelSpec, request: GenerationRequest) -> float:
        if not traits(spec).billed_by_tokens or spec.price is None:
            return self.costliest_usd.get(spec.name, 0.0)
        size = len(request.prompt.encode("utf-8"))
        # Byte-level and byte-fallback tokenizers never make more tokens than bytes: a safe first bound.
        ratio = min(1.0, self.tokens_per_byte.get(spec.name, 1.0) * 1.25)
        prompt = int(size * ratio) + TEMPLATE_TOKENS
        return (prompt * spec.price.input_per_1m + request.max_new_tokens * spec.price.output_per_1m) / 1e6

    def admit(self, spec: ModelSpec, todo: Sequence[GenerationRequest], at_most: int) -> list[GenerationRequest]:
        batch: list[GenerationRequest] = []
        reserved = self.spent_usd
        for request in todo[:at_most]:
            reserved += self.ceiling_usd(spec, request)
            if reserved > self.limit_usd:
                break
            batch.append(request)
        return batch

    def record(self, spec: ModelSpec, request: GenerationRequest, result: GenerationResult) -> None:
        cost = result_cost_usd(spec, result)
        if cost is None and result.error is None:
            cost = self.ceiling_usd(spec, request)  # spend not reported: assume the most it could be
        self.spent_usd += cost or 0.0
        self.costliest_usd[spec.name] = max(self.costliest_usd.get(spec.name, 0.0), cost or 0.0)
        if result.prompt_tokens:
            ratio = result.prompt_tokens / max(1, len(request.prompt.encode("utf-8")))
            self.tokens_per_byte[spec.name] = max(self.tokens_per_byte.get(spec.name, 0.0), ratio)


def generate_within(
    backend: Backend, requests: Sequence[GenerationRequest], budget: Budget
) -> Iterator[GenerationResult]:
    """`backend.generate`, sent in batches that fit the budget; stops (counting the rest as skipped)
    when the next call might pass the limit."""
    spec = backend.spec
    by_key = {r.key: r for r in requests}
    todo = list(requests)
    while todo:
        if not traits(spec).billed_by_tokens:
            at_most = 1  # paid by time: each call's cost is known only once it has run
        elif spec.name in budget.tokens_per_byte:
            at_most = len(todo)
        else:
            at_most = spec.max_concurrency  # until a reply shows how this model counts tokens
        batch = budget.admit(spec, todo, at_most)
        if not batch:
            budget.skipped += len(todo)
            return
        todo = todo[len(batch) :]
        for result in backend.generate(batch):
            budget.record(spec, by_key[result.key], result)
            yield result
