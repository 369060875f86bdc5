"""Model backends behind one small Protocol, chosen by the pilot's `backend:` string.

Heavy packages (torch, transformers, openai) are imported only when a backend of that kind is built,
so `roi validate`, `roi plan` and `roi --help` stay fast.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from roi.endpoints import effective_base_url, key_transport_problem, url_problem
from roi.errors import Problem, RoiError
from roi.pilot import LoadedPilot, ModelSpec
from roi.redaction import safe_url

Status = Callable[[str], None]


@dataclass(frozen=True)
class GenerationRequest:
    key: str
    prefix: str  # shared by many requests: a backend may compute it once
    suffix: str
    max_new_tokens: int
    stop: tuple[str, ...]
    # Whether the text so far already holds every answer the call can give (later text cannot change
    # what is parsed): a local backend stops there. API backends cannot and ignore it. Not part of
    # the response cache's key: outputs with or without it parse the same.
    complete: Callable[[str], bool] | None = field(default=None, compare=False, repr=False)

    @property
    def prompt(self) -> str:
        return self.prefix + self.suffix


@dataclass(frozen=True)
class GenerationResult:
    key: str
    text: str | None  # None when the call failed
    prompt_tokens: int | None
    output_tokens: int | None
    latency_s: float  # wall time of this call as a user would wait for it
    cached_prompt_tokens: int | None = None
    error: str | None = None
    retries: int = 0
    backoff_s: float = 0.0  # time spent waiting between retries, kept out of latency_s
    # Seconds of the machine this call took where the machine is what is paid for (a local engine):
    # its share of the passes of the batch it ran in. None where a provider bills tokens.
    machine_s: float | None = None


# How a backend read a candidate's probability (stored with every probe row).
TEACHER_FORCING = "teacher_forcing"  # a local model, teacher-forced: exact
ECHO = "echo"  # a server's logprobs of the prompt's own tokens: exact up to the served weights
TOP_LOGPROBS = "top_logprobs"  # a server's top-N lists walked token by token: an estimate


@dataclass(frozen=True)
class ContinuationQuery:
    """Score `candidates` as continuations of `prompt`, and list the model's own `top_k` best answers."""

    prompt: str
    candidates: tuple[str, ...]
    top_k: int
    # How a server's logprobs are read (docs/probe.md, "API models"); local models ignore these.
    api_method: str = "auto"  # auto | echo | top_logprobs
    top_logprobs: int = 20  # alternatives listed per one-token call
    max_calls: int = 40  # one-token calls per query, at most (top_logprobs)


@dataclass(frozen=True)
class CandidateScore:
    logprob: float  # natural log of P(candidate | prompt), or of an upper bound on it
    tokens: int  # the candidate's tokens, by the model's own tokenizer
    upper_bound: bool = False  # only bounded: the candidate left a server's listed alternatives


@dataclass(frozen=True)
class ContinuationScores:
    method: str  # TEACHER_FORCING, ECHO or TOP_LOGPROBS
    prompt_tokens: int
    candidates: list[CandidateScore]  # in the query's order
    top: list[str]  # the model's best distinct continuations, each ended at a newline and stripped


class CannotScore(Exception):
    """This backend cannot read candidate probabilities (why, in words): the probe skips the model."""


class ScoringFailed(Exception):
    """A call for candidate probabilities failed after its retries (the redacted error)."""


class Backend(Protocol):
    spec: ModelSpec

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        """Run greedy generation for every request, yielding results as they finish (any order)."""
        ...

    def count_tokens(self, text: str) -> int | None:
        """Tokens of `text` as this model counts them; None when no tokenizer is at hand."""
        ...

    def describe(self) -> dict[str, str]:
        """Facts for reproducibility: library versions, device, dtype, model file."""
        ...

    def score_continuations(self, query: ContinuationQuery) -> ContinuationScores:
        """The probability the model gives each candidate after the prompt, teacher-forced where the
        backend can, and its own top continuations (the superposition probe's measurement). Raises
        `CannotScore` when this backend cannot read them, `ScoringFailed` when a call fails."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class StopsAtDeadline(Protocol):
    """Optional: a backend that can end its wait for calls in flight at the run's deadline (the runner
    otherwise checks the deadline between finished calls)."""

    def stop_at(self, deadline: float | None) -> None:
        """Stop waiting at `deadline` (a `time.monotonic()` value); calls in flight then are dropped."""
        ...


# ---------------------------------------------------------------- optional capability: batch jobs


@dataclass(frozen=True)
class BatchRecord:
    """A batch job a run submitted, or began to (uploaded its input but has no job id yet)."""

    number: int  # the store's id of the record
    keys: tuple[str, ...]  # the calls (custom_id = call key) its input file holds
    input_ref: str  # the uploaded file's id, or the input file's path for a batch runner here
    batch_id: str | None
    submitted_at: str | None  # ISO time the job was created


@dataclass(frozen=True)
class BatchProgress:
    batch_id: str
    status: str  # the service's word: validating, in_progress, finalizing, completed, ...
    total: int
    completed: int
    failed: int
    finished: bool  # no more polling: results (or the reason there are none) are at hand


class BatchJournal(Protocol):
    """Where a batch backend keeps its jobs, so a killed run polls the job it submitted instead of
    submitting again (the store implements it per run and model)."""

    @property
    def folder(self) -> Path:
        """Where the input and output files of this run's jobs are written (owner-only)."""
        ...

    def open_batches(self) -> list[BatchRecord]:
        """The jobs not yet collected, oldest first."""
        ...

    def finished_keys(self) -> set[str]:
        """The calls of this run and model whose answers are stored (a job holding only these is done)."""
        ...

    def uploaded(self, keys: Sequence[str], input_sha256: str, input_ref: str) -> BatchRecord: ...

    def submitted(self, number: int, batch_id: str) -> BatchRecord: ...

    def collected(self, number: int) -> None: ...


@runtime_checkable
class SubmitsBatches(Protocol):
    """A backend that sends calls as batch jobs: the runner gives it the run's journal and a progress
    callback before `generate`."""

    def attach(self, journal: BatchJournal, on_progress: Callable[[BatchProgress], None]) -> None: ...


BackendFactory = Callable[[ModelSpec, Path, Status], Backend]
# What stops a model from being used before anything runs (e.g. a local model not on disk), in words
# for the analyst; None when nothing does. Must stay cheap: validate and plan call it.
Preflight = Callable[[ModelSpec, Path], str | None]


@dataclass(frozen=True)
class Traits:
    """What the rest of roi may know of a model's backend (costs, the response cache, plans, budgets,
    credentials), declared in its registry entry: nothing outside the registry checks a backend's name."""

    # Calls go to an HTTP endpoint (`base_url`, an API key): its URL, not weights on disk, identifies the
    # model; its credentials are checked before a run; `max_concurrency` calls are in flight at once.
    remote: bool
    # Priced per token (`price`), so a call's cost is bounded before it is sent; otherwise by machine
    # time (`cost.usd_per_hour`), known only once the call has run.
    billed_by_tokens: bool


LOCAL_ENGINE = Traits(remote=False, billed_by_tokens=False)
TOKEN_API = Traits(remote=True, billed_by_tokens=True)


@dataclass(frozen=True)
class BackendEntry:
    factory: str  # "module:Class", imported only when the backend is built
    install_hint: str
    traits: Traits
    preflight: str | None = None  # "module:function" of a light module (a Preflight)


_REGISTRY: dict[str, BackendEntry] = {
    "transformers": BackendEntry(
        "roi.backends.local.transformers_backend:TransformersBackend",
        "pip install torch==2.13.0 transformers gguf accelerate",
        LOCAL_ENGINE,
        "roi.backends.local.local_models:missing_model",
    ),
    "openai": BackendEntry("roi.backends.openai_backend:OpenAIBackend", "pip install openai", TOKEN_API),
}
# Models with `batch: true` send their calls as batch jobs.
_BATCH_REGISTRY: dict[str, BackendEntry] = {
    "openai": BackendEntry(
        "roi.backends.batch:BatchBackend", "pip install openai", TOKEN_API, "roi.backends.batch_vllm:missing_runner"
    ),
}


def _entry(spec: ModelSpec) -> BackendEntry:
    return (_BATCH_REGISTRY if spec.batch else _REGISTRY)[spec.backend]


def traits(spec: ModelSpec) -> Traits:
    return _entry(spec).traits


def _resolve(target: str) -> Any:
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


def preflight(pilot: LoadedPilot, skip: Collection[str] = ()) -> None:
    """Fail, located at each model's `model:` line, when a model cannot be used (e.g. not on disk)."""
    problems = []
    for index, spec in enumerate(pilot.spec.models):
        entry = _entry(spec)
        if spec.name in skip or entry.preflight is None:
            continue
        check: Preflight = _resolve(entry.preflight)
        message = check(spec, pilot.path.parent)
        if message is not None:
            where = pilot.locate(("models", index, "model"))
            problems.append(Problem(f"model '{spec.name}': {message}", where.file, where.line, where.field))
    if problems:
        raise RoiError(problems)


def check_credentials(models: Sequence[ModelSpec], skip: Collection[str] = ()) -> None:
    """Fail before anything is written when a model's API key variable is not set, or its endpoint
    (`base_url`, else `OPENAI_BASE_URL`) is not an http(s) URL a key may be sent to (roi/endpoints.py)."""
    problems = []
    for m in models:
        if m.name in skip or not traits(m).remote:
            continue
        if m.api_key_env and not os.environ.get(m.api_key_env):
            problems.append(
                Problem(f"model '{m.name}': the environment variable {m.api_key_env} is not set", field="api_key_env")
            )
        url = effective_base_url(m.base_url)
        problem = url_problem(url) or (key_transport_problem(url) if m.api_key_env else None)
        if problem is not None:
            where = "base_url" if m.base_url else "OPENAI_BASE_URL"
            problems.append(Problem(f"model '{m.name}': {safe_url(url)}: {problem}", field=where))
    if problems:
        raise RoiError(problems)


def create_backend(spec: ModelSpec, base_dir: Path, status: Status) -> Backend:
    """Build the backend a model spec names; a missing package becomes an install hint."""
    entry = _entry(spec)
    try:
        factory: BackendFactory = _resolve(entry.factory)
    except ImportError as err:
        raise RoiError(
            f"model '{spec.name}': backend '{spec.backend}' needs a package that is not "
            f"installed ({err.name}); try: {entry.install_hint}"
        ) from None
    return factory(spec, base_dir, status)
