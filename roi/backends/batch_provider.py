"""Batch jobs on a provider's OpenAI-compatible control plane: `POST /files` (purpose `batch`),
`POST /batches`, `GET /batches/{id}` to poll, `GET /batches` to find a job made from an input file, and
`GET /files/{id}/content` for the output and error files.

Control calls are few and idempotent to repeat (a job is looked up by its input file before it is
created), so the client's own retries with backoff handle their transient failures; every call has
the model's `timeout_s`. A job or file the service answers 404 for is lost (`BatchLost`): the batch
backend sends its calls again rather than failing every resume on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from roi.backends import BatchProgress
from roi.backends.batch_service import BatchLost, Polled
from roi.backends.openai_backend import NO_KEY, checked_base_url
from roi.endpoints import key_transport_problem
from roi.errors import RoiError
from roi.pilot import ModelSpec
from roi.redaction import safe_url

# Job states after which nothing changes (OpenAI's words; other services use the same).
FINISHED = {"completed", "failed", "expired", "cancelled"}
LIVE = {"validating", "in_progress", "finalizing", "completed"}  # a job worth adopting rather than repeating


class ProviderBatches:
    def __init__(self, spec: ModelSpec, key: str | None) -> None:
        from openai import OpenAI

        self.spec = spec
        self.base_url = checked_base_url(spec)
        if key is not None and (problem := key_transport_problem(self.base_url)):
            raise RoiError(f"model '{spec.name}': {problem}")
        self._client = OpenAI(
            api_key=key or NO_KEY, base_url=self.base_url, max_retries=spec.max_retries, timeout=spec.timeout_s
        )

    def upload(self, path: Path) -> str:
        with path.open("rb") as handle:
            return str(self._client.files.create(file=(path.name, handle), purpose="batch").id)

    def find(self, input_ref: str) -> str | None:
        # Newest first: a job this run made is on the first page, so the rest of the account's history
        # is not paged through.
        for job in self._client.batches.list(limit=100).data:
            if job.input_file_id == input_ref and job.status in LIVE:
                return str(job.id)
        return None

    def create(self, input_ref: str, endpoint: str, label: dict[str, str]) -> str:
        with lost_on_404(input_ref):
            job = self._client.batches.create(
                input_file_id=input_ref,
                endpoint=endpoint,  # type: ignore[arg-type]  # one of the client's literal endpoints
                completion_window="24h",
                metadata=label,
            )
        return str(job.id)

    def poll(self, batch_id: str) -> Polled:
        with lost_on_404(batch_id):
            job = self._client.batches.retrieve(batch_id)
        counts = job.request_counts
        progress = BatchProgress(
            batch_id=batch_id,
            status=job.status,
            total=counts.total if counts else 0,
            completed=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            finished=job.status in FINISHED,
        )
        outputs = tuple(ref for ref in (job.output_file_id, job.error_file_id) if ref)
        error = None if job.status == "completed" else f"batch {job.status}{job_errors(job)}"
        return Polled(progress, outputs, error)

    def read(self, output_ref: str) -> str:
        with lost_on_404(output_ref):
            return str(self._client.files.content(output_ref).text)

    def describe(self) -> dict[str, str]:
        return {"batch_service": "provider files and batches endpoints", "base_url": safe_url(self.base_url)}

    def close(self) -> None:
        self._client.close()


@contextmanager
def lost_on_404(ref: str) -> Iterator[None]:
    from openai import NotFoundError

    try:
        yield
    except NotFoundError as error:
        raise BatchLost(f"{ref}: {error.status_code} from the service") from None


def job_errors(job: Any) -> str:
    errors = getattr(getattr(job, "errors", None), "data", None) or []
    messages = [str(getattr(e, "message", "") or "") for e in errors]
    return f": {'; '.join(m for m in messages if m)[:300]}" if any(messages) else ""
