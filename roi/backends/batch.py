"""Calls sent as batch jobs (`batch: true`): the run's calls become an OpenAI Batch input file (JSONL, one
request per line, `custom_id` = roi's call key), the job is submitted and polled with backoff, and its
output is read back by `custom_id`.

Where the job runs is a `BatchService`: a provider's files and batches endpoints
(`roi/backends/batch_provider.py`), or vLLM's batch runner on this machine
(`roi/backends/batch_vllm.py`, when the model sets `batch_runner`).

Each step is written to the run's journal (the store) before the next is taken: the input file's id
once uploaded, the job's id once created, and the job's collection once its results are stored. A run
killed at any point therefore resumes by polling the job it submitted; a job whose creation was cut off
before its id was written is looked up by its input file before a new one is made. No job is ever
submitted twice for the same calls.

A call's `latency_s` is the job's turnaround (submission to results), the time a caller of a batch
waits; its tokens and cached tokens come from each reply's `usage`, priced with `price.batch_discount`.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from roi.backends import (
    BatchJournal,
    BatchProgress,
    BatchRecord,
    CannotScore,
    ContinuationQuery,
    ContinuationScores,
    GenerationRequest,
    GenerationResult,
    Status,
)
from roi.backends.batch_provider import ProviderBatches
from roi.backends.batch_service import BatchLost, BatchService, Polled
from roi.backends.batch_vllm import VllmBatchRunner
from roi.backends.openai_backend import Attempts, endpoint_path, read_api_key, reply_result, request_body
from roi.files import write_atomic
from roi.pilot import ModelSpec
from roi.redaction import clip

MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Finished:
    record: BatchRecord  # as last written (a job created again has a new id and time)
    last: Polled


class BatchBackend:
    """The Backend for models with `batch: true` (also the `SubmitsBatches` capability)."""

    # Class attributes so tests can shorten the waits.
    poll_first_s = 2.0
    poll_factor = 1.5
    poll_max_s = 60.0

    def __init__(self, spec: ModelSpec, base_dir: Path, status: Status) -> None:
        self.spec = spec
        self._key = read_api_key(spec)
        self._status = status
        self._service = make_service(spec, base_dir, status, self._key)
        self._journal: BatchJournal = MemoryJournal()
        self._on_progress: Callable[[BatchProgress], None] = lambda p: None
        self._deadline: float | None = None  # time.monotonic() at which polling ends

    # ------------------------------------------------------------ Backend protocol and capability

    def attach(self, journal: BatchJournal, on_progress: Callable[[BatchProgress], None]) -> None:
        self._journal = journal
        self._on_progress = on_progress

    def stop_at(self, deadline: float | None) -> None:
        """Stop polling at `deadline` (a `time.monotonic()` value); the job stays open in the journal,
        so the next run collects it."""
        self._deadline = deadline

    def count_tokens(self, text: str) -> int | None:
        return None  # the served model's tokenizer is not at hand; usage from the replies counts

    def score_continuations(self, query: ContinuationQuery) -> ContinuationScores:
        raise CannotScore("calls go as batch jobs, whose replies are read for their text only")

    def describe(self) -> dict[str, str]:
        return {"batch": "true", "endpoint": self.spec.endpoint, "model": self.spec.model, **self._service.describe()}

    def close(self) -> None:
        self._service.close()

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        """First the jobs an earlier process left open (their calls are not sent again), then one new
        job for the calls no job holds."""
        wanted = {r.key: r for r in requests}
        for record in self._journal.open_batches():
            held = [wanted.pop(k) for k in record.keys if k in wanted]
            yield from self._collect(record, held)
        if wanted:
            yield from self._collect(self._submit(list(wanted.values())), list(wanted.values()))

    # ------------------------------------------------------------ one job

    def _submit(self, requests: list[GenerationRequest]) -> BatchRecord:
        text = batch_input(self.spec, requests)
        digest = hashlib.sha256(text.encode()).hexdigest()
        path = write_atomic(self._journal.folder / f"{self.spec.name}-{digest[:16]}.jsonl", text)
        record = self._journal.uploaded([r.key for r in requests], digest, self._service.upload(path))
        self._status(f"{self.spec.name}: batch input of {len(requests)} calls ready ({record.input_ref})")
        return self._create(record)

    def _create(self, record: BatchRecord) -> BatchRecord:
        found = self._service.find(record.input_ref)
        label = {"roi_model": self.spec.name, "roi_calls": str(len(record.keys))}
        batch_id = found or self._service.create(record.input_ref, endpoint_path(self.spec), label)
        verb = "found (made before this process was stopped)" if found else "submitted"
        self._status(f"{self.spec.name}: batch {batch_id} {verb}; polling for results")
        return self._journal.submitted(record.number, batch_id)

    def _collect(self, record: BatchRecord, requests: list[GenerationRequest]) -> Iterator[GenerationResult]:
        if requests:
            polled = self._wait(record)
            if polled is None:
                return  # the run's deadline came first: the job stays open for the next run
            latency_s = turnaround_s(polled.record)
            replies = self._replies(polled.last)
            for request in requests:
                yield self._result(request, replies.get(request.key), latency_s, polled.last.error)
        self._journal.collected(record.number)

    def _wait(self, record: BatchRecord) -> Finished | None:
        if record.batch_id is None:
            record = self._create(record)
        delay = self.poll_first_s
        while True:
            assert record.batch_id is not None
            try:
                polled = self._service.poll(record.batch_id)
            except BatchLost:
                self._status(f"{self.spec.name}: batch {record.batch_id} is gone; running its input again")
                record = self._journal.submitted(record.number, self._service.create(
                    record.input_ref, endpoint_path(self.spec), {"roi_model": self.spec.name}
                ))  # fmt: skip
                continue
            self._on_progress(polled.progress)
            if polled.progress.finished:
                return Finished(record, polled)
            left = math.inf if self._deadline is None else self._deadline - time.monotonic()
            if left <= 0:
                self._status(f"{self.spec.name}: run deadline reached; batch {record.batch_id} is left running")
                return None
            time.sleep(min(delay, left))
            delay = min(self.poll_max_s, delay * self.poll_factor)

    def _replies(self, polled: Polled) -> dict[str, dict[str, Any]]:
        """Output and error lines by custom_id."""
        lines: dict[str, dict[str, Any]] = {}
        for ref in polled.outputs:
            for raw in self._service.read(ref).splitlines():
                if raw.strip():
                    line = json.loads(raw)
                    lines[str(line.get("custom_id"))] = line
        return lines

    def _result(
        self, request: GenerationRequest, line: dict[str, Any] | None, latency_s: float, job_error: str | None
    ) -> GenerationResult:
        if line is None:
            error = f"BatchMissing: not in the batch's output ({job_error or 'no reason given'})"
            return failed(request, clip(error, MAX_ERROR_CHARS, self._key), latency_s)
        response = line.get("response") or {}
        body = response.get("body")
        if line.get("error") or response.get("status_code") != 200 or not isinstance(body, dict):
            return failed(request, clip(line_error(line), MAX_ERROR_CHARS, self._key), latency_s)
        reply = json.loads(json.dumps(body), object_hook=lambda d: SimpleNamespace(**d))
        try:
            return reply_result(self.spec, request, reply, Attempts(attempt_s=latency_s))
        except Exception as bad:  # a reply without choices or text: recorded, not retried
            return failed(request, clip(f"{type(bad).__name__}: {bad}", MAX_ERROR_CHARS, self._key), latency_s)


# ---------------------------------------------------------------- helpers


def make_service(spec: ModelSpec, base_dir: Path, status: Status, key: str | None) -> BatchService:
    if spec.batch_runner is not None:
        return VllmBatchRunner(spec, base_dir, status)
    return ProviderBatches(spec, key)


def batch_input(spec: ModelSpec, requests: Sequence[GenerationRequest]) -> str:
    """The OpenAI Batch input file: one POST per call, the same body a direct call would send."""
    path = endpoint_path(spec)
    return "".join(
        json.dumps({"custom_id": r.key, "method": "POST", "url": path, "body": request_body(spec, r)}) + "\n"
        for r in requests
    )


def turnaround_s(record: BatchRecord) -> float:
    if record.submitted_at is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - datetime.fromisoformat(record.submitted_at)).total_seconds())


def line_error(line: dict[str, Any]) -> str:
    """One output line's failure in the form `describe_error` gives direct calls."""
    response = line.get("response") or {}
    status = response.get("status_code")
    body = response.get("body")
    error = line.get("error") or (body.get("error") if isinstance(body, dict) else None) or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    head = "BatchRequestError" + (f" (HTTP {status})" if status is not None else "")
    return f"{head}: {' '.join(str(message or '').split())}"


def failed(request: GenerationRequest, error: str, latency_s: float) -> GenerationResult:
    return GenerationResult(request.key, None, None, None, latency_s, error=error)


class MemoryJournal:
    """A journal for a backend used outside a run (tests, benchmarks): nothing survives the process."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._records: dict[int, BatchRecord] = {}
        self._collected: set[int] = set()

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="roi-batch-"))
        return self._folder

    def open_batches(self) -> list[BatchRecord]:
        return [r for n, r in sorted(self._records.items()) if n not in self._collected]

    def uploaded(self, keys: Sequence[str], input_sha256: str, input_ref: str) -> BatchRecord:
        record = BatchRecord(len(self._records) + 1, tuple(keys), input_ref, None, None)
        self._records[record.number] = record
        return record

    def submitted(self, number: int, batch_id: str) -> BatchRecord:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        record = BatchRecord(number, self._records[number].keys, self._records[number].input_ref, batch_id, now)
        self._records[number] = record
        return record

    def collected(self, number: int) -> None:
        self._collected.add(number)
