"""Few-shot examples and eval items from CSV, JSONL or an inline list: `input`, `output`, optional `id`.

A data path is relative to the pilot file's folder, or absolute; `..` and symlinks are followed. The
rule is permissive on purpose (shared data folders, mounted volumes) and means a pilot file can make
roi read any file the user running it can read, so review pilot files from others before running
them. What is read must be a regular file of at most `MAX_DATA_BYTES` (roi/files.py): a FIFO, a
device (also through a symlink) or a directory is refused without being read.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from roi.errors import Problem, RoiError
from roi.files import FileRefused, read_regular_file

MAX_DATA_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    output: str
    # Where the row is, for messages: `data/eval.csv:4`, or the pilot's own line for an inline list.
    source: str | None = field(default=None, compare=False)


def load_examples(path: Path, where: Problem) -> list[Example]:
    """Load a data file named by the pilot field `where` points at; problems name both places."""

    def fail(message: str, line: int | None = None) -> RoiError:
        located = f"{path}:{line}: {message}" if line else f"{path}: {message}"
        return RoiError([replace(where, message=located)])

    text = _read(path, fail)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(text, fail)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(text, fail)
    else:
        raise fail("unsupported data file type; use .csv or .jsonl (columns/keys: input, output)")
    if not rows:
        raise fail("no data rows")
    return _examples(rows, path, fail)


def _read(path: Path, fail: _Fail) -> str:
    try:
        return read_regular_file(path, MAX_DATA_BYTES).decode("utf-8-sig")
    except FileRefused as refused:
        message = str(refused)
        raise fail("data file not found" if message == "file not found" else message) from None
    except UnicodeDecodeError as err:
        raise fail(f"not UTF-8 text (byte {err.start})") from None


Row = tuple[int, dict[str, object]]


class _Fail(Protocol):
    def __call__(self, message: str, line: int | None = None) -> RoiError: ...


COLUMNS = ("id", "input", "output")


def _csv_rows(text: str, fail: _Fail) -> list[Row]:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        found = reader.fieldnames or []
        # `Input,Output` or ` input ` name the same columns: the header is read without case or spaces.
        reader.fieldnames = [c.strip().lower() if c.strip().lower() in COLUMNS else c for c in found]
        missing = [c for c in ("input", "output") if c not in reader.fieldnames]
        if missing:
            shown = ",".join(found) if found else "nothing (the file is empty)"
            raise fail(
                f"missing column(s) {', '.join(missing)}: the header row is {shown}; "
                "it must name input and output (optional id; other columns are ignored)",
                1,
            )
        rows: list[Row] = []
        for record in reader:
            if None in record:
                raise fail("more fields than the header has", reader.line_num)
            if any(v is None for v in record.values()):
                raise fail("fewer fields than the header has", reader.line_num)
            rows.append((reader.line_num, dict(record)))
        return rows
    except csv.Error as err:
        raise fail(f"malformed CSV: {err}") from None


def _jsonl_rows(text: str, fail: _Fail) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise fail(f"malformed JSON: {err.msg}", number) from None
        except RecursionError:  # the json module recurses once per level of [ or {
            raise fail("JSON nested too deeply", number) from None
        if not isinstance(record, dict):
            raise fail("each line must be a JSON object with input and output", number)
        missing = [k for k in ("input", "output") if k not in record]
        if missing:
            keys = ", ".join(map(str, record)) or "none"
            raise fail(f"missing key(s) {', '.join(missing)}; this line has {keys}", number)
        rows.append((number, record))
    return rows


def _examples(rows: list[Row], path: Path, fail: _Fail) -> list[Example]:
    examples: list[Example] = []
    seen: set[str] = set()
    for index, (line, record) in enumerate(rows):
        values = {}
        for key in ("input", "output"):
            value = record.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or not value.strip():
                raise fail(f"'{key}' must be a non-empty string", line)
            values[key] = value.strip()
        raw_id = record.get("id")
        item_id = str(raw_id).strip() if raw_id not in (None, "") else str(index + 1)
        if item_id in seen:
            raise fail(f"duplicate id {item_id!r}", line)
        seen.add(item_id)
        examples.append(Example(item_id, values["input"], values["output"], f"{path}:{line}"))
    return examples
