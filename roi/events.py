"""Structured events of a run (`roi run --log-json FILE`): one JSON object per line, for cron logs and
log shippers. Events carry ids, counts and statuses only: never prompts, outputs, URLs or keys (every
text is also passed through roi/redaction.py on its way out)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from roi.files import open_private_append, private_dir
from roi.redaction import redact

Emit = Callable[..., None]


def ignore(event: str, **fields: Any) -> None:
    """The default sink: no event log."""


class EventLog:
    """Appends events to a file (opened once; each line flushed, so a killed run keeps its events)."""

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        self._file: TextIO = open_private_append(path)

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event, "pid": os.getpid()}
        record.update({k: _redacted(v) for k, v in fields.items()})
        self._file.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
