"""Where batch jobs run, as the batch backend (roi/backends/batch.py) sees it: a provider's files and
batches endpoints (roi/backends/batch_provider.py) or vLLM's batch runner here (batch_vllm.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from roi.backends import BatchProgress


class BatchLost(Exception):
    """The service no longer knows the job or file (a provider answered 404; a batch runner here that
    died with an earlier process)."""


@dataclass(frozen=True)
class Polled:
    progress: BatchProgress
    outputs: tuple[str, ...] = ()  # the output and error files to read once the job is finished
    error: str | None = None  # why calls have no result (the job failed, expired or was cancelled)


class BatchService(Protocol):
    """Where batch jobs run."""

    def upload(self, path: Path) -> str:
        """Make the input file available to the service; returns its reference."""
        ...

    def find(self, input_ref: str) -> str | None:
        """The id of a live job already made from this input, if any."""
        ...

    def create(self, input_ref: str, endpoint: str, label: dict[str, str]) -> str:
        """Start a job on the input; returns its id."""
        ...

    def poll(self, batch_id: str) -> Polled: ...

    def read(self, output_ref: str) -> str:
        """The text of an output or error file (JSONL)."""
        ...

    def describe(self) -> dict[str, str]: ...

    def close(self) -> None: ...
