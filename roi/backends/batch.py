"""Calls sent as batch jobs (`batch: true`): the run's calls become an OpenAI Batch input file (JSONL, one
request per line, `custom_id` = roi's call key), the job is submitted and polled with backoff, and its
output is read back by `custom_id`.

Where the job runs is a `BatchService`: a provider's files and batches endpoints
(`roi/backends/batch_provider.py`), or vLLM's batch runner on this machine
(`roi/backends/batch_vllm.py`, when the model sets `batch_runner`).

Each step is written to the run's journal (the store) before the next is taken: the input file's id
once uploaded, the job's id once created, and the job's collection once every call it holds has its
result stored. A run killed at any point therefore resumes by polling the job it submitted; a job whose
creation was cut off before its id was written is looked up by its input file before a new one is made.
A job stays open while any of its calls has no stored result, whatever a later `generate` asks for (a
resume may ask for a few calls at a time, under `--max-cost`, or for other calls first): a call a job
holds is read from that job, never sent in another. Only a job the service no longer knows (lost) has
its calls sent again, once.

The output is untrusted: a line that does not parse, or names no call, is skipped, and a call without a
readable line is stored as failed (`BatchMissing`), so `--resume` sends it again.

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
from roi.backends.openai_backend import (
    MAX_ERROR_CHARS,
    Attempts,
    endpoint_path,
    read_api_key,
    reply_result,
    request_body,
)
from roi.errors import RunFailed
from roi.files import write_atomic
from roi.pilot import ModelSpec
from roi.redaction import clip


@dataclass(frozen=True)
class Finished:
    record: BatchRecord  # as last written (a lost job's calls sent again are a new record)
    last: Polled


@dataclass(frozen=True)
class Replies:
    """A finished job's output and error lines by custom_id, and why some calls may have none."""

    lines: dict[str, dict[str, Any]]
    problems: tuple[str, ...] = ()


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
        self._delivered: set[str] = set()  # calls whose results this process has handed out

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
        """First the jobs an earlier process (or call) left open, for the requested calls they hold (never
        sent again), then one new job for the requested calls no job holds."""
        wanted = {r.key: r for r in requests}
        finished = self._journal.finished_keys()
        for record in self._journal.open_batches():
            held = [wanted.pop(k) for k in record.keys if k in wanted]
            yield from self._collect(record, held, finished)
        if wanted:
            todo = list(wanted.values())
            yield from self._collect(self._upload(todo), todo, finished)

    # ------------------------------------------------------------ one job

    def _upload(self, requests: list[GenerationRequest]) -> BatchRecord:
        """The job's input, written and uploaded; the job is created when it is first waited for."""
        text = batch_input(self.spec, requests)
        digest = hashlib.sha256(text.encode()).hexdigest()
        path = write_atomic(self._journal.folder / f"{self.spec.name}-{digest[:16]}.jsonl", text)
        record = self._journal.uploaded([r.key for r in requests], digest, self._service.upload(path))
        self._status(f"{self.spec.name}: batch input of {len(requests)} calls ready ({record.input_ref})")
        return record

    def _create(self, record: BatchRecord) -> BatchRecord:
        found = self._service.find(record.input_ref)
        label = {"roi_model": self.spec.name, "roi_calls": str(len(record.keys))}
        batch_id = found or self._service.create(record.input_ref, endpoint_path(self.spec), label)
        verb = "found (made before this process was stopped)" if found else "submitted"
        self._status(f"{self.spec.name}: batch {batch_id} {verb}; polling for results")
        return self._journal.submitted(record.number, batch_id)

    def _collect(
        self, record: BatchRecord, requests: list[GenerationRequest], finished: set[str]
    ) -> Iterator[GenerationResult]:
        """Results for `requests` (calls `record` holds) once its job is done; the record is closed only
        when every call it holds has a result, delivered now or stored before."""
        if requests:
            polled = self._wait(record, requests)
            if polled is None:
                return  # the run's deadline came first: the job stays open for the next run
            record = polled.record
            latency_s = turnaround_s(record)
            replies = self._replies(polled.last)
            for request in requests:
                self._delivered.add(request.key)
                yield self._result(request, replies, latency_s, polled.last.error)
        if set(record.keys) <= self._delivered | finished:
            self._journal.collected(record.number)

    def _wait(self, record: BatchRecord, requests: list[GenerationRequest]) -> Finished | None:
        delay, resent = self.poll_first_s, False
        while True:
            try:
                record = record if record.batch_id is not None else self._create(record)
                assert record.batch_id is not None
                polled = self._service.poll(record.batch_id)
            except BatchLost as lost:
                if resent:
                    message = f"model '{self.spec.name}': batch lost again right after it was sent: {lost}"
                    raise RunFailed(message) from None
                record, resent = self._resend(record, requests), True
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

    def _resend(self, lost: BatchRecord, requests: list[GenerationRequest]) -> BatchRecord:
        """A job (or its input file) the service no longer knows: nothing more can come of it, so its
        record is closed and the requested calls it held go out in a new job."""
        self._status(f"{self.spec.name}: batch {lost.batch_id or lost.input_ref} is gone; sending its calls again")
        self._journal.collected(lost.number)
        return self._upload(requests)

    def _replies(self, polled: Polled) -> Replies:
        """Output and error lines by custom_id; lines that do not parse or name no call are counted, not
        trusted (their calls are then missing and stored as failed)."""
        lines: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        for ref in polled.outputs:
            try:
                text = self._service.read(ref)
            except BatchLost:
                problems.append(f"output file {ref} is gone")
                continue
            unreadable = 0
            for raw in text.splitlines():
                line = parse_line(raw) if raw.strip() else {}
                if line is None:
                    unreadable += 1
                elif line:
                    lines[line["custom_id"]] = line
            if unreadable:
                problems.append(f"{unreadable} unreadable lines in {ref}")
        return Replies(lines, tuple(problems))

    def _result(
        self, request: GenerationRequest, replies: Replies, latency_s: float, job_error: str | None
    ) -> GenerationResult:
        line = replies.lines.get(request.key)
        if line is None:
            reasons = ([job_error] if job_error else []) + list(replies.problems)
            error = f"BatchMissing: not in the batch's output ({'; '.join(reasons) or 'no reason given'})"
            return failed(request, clip(error, MAX_ERROR_CHARS, self._key), latency_s)
        response = as_dict(line.get("response"))
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


def parse_line(raw: str) -> dict[str, Any] | None:
    """One output line as an object with a string `custom_id`; None when it is not one."""
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line if isinstance(line, dict) and isinstance(line.get("custom_id"), str) else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def line_error(line: dict[str, Any]) -> str:
    """One output line's failure in the form `describe_error` gives direct calls."""
    response = as_dict(line.get("response"))
    status = response.get("status_code")
    error = line.get("error") or as_dict(response.get("body")).get("error") or {}
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

    def finished_keys(self) -> set[str]:
        return set()  # nothing is stored: the backend's own record of what it delivered counts

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
