"""Running a pilot: plan the calls, send them to each model's backend, grade and store every finished
call at once (so an interrupted run keeps it), then summarise and write the run folder."""

from __future__ import annotations

import json
import platform
import secrets
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from roi import store
from roi.backends import Backend, GenerationRequest, GenerationResult, create_backend
from roi.costs import call_cost_usd
from roi.errors import RoiError
from roi.grading import AnswerSpaces, grade_call
from roi.metrics import RunSummary, summarize
from roi.pilot import LoadedPilot, ModelSpec
from roi.prompts import PromptCall, build_calls

DB_NAME = "roi.db"


@dataclass
class Progress:
    """What a progress display needs; the runner calls `on_progress` after every stored call."""

    total: int
    done: int = 0
    failed: int = 0
    model: str = ""


@dataclass
class RunOptions:
    out_dir: Path = field(default_factory=lambda: Path("reports"))
    limit: int | None = None
    resume: str | None = None
    on_progress: Callable[[Progress], None] = lambda p: None
    status: Callable[[str], None] = lambda s: None
    # Tests inject backends by model name here; a pilot file can only name the registered ones.
    backends: Mapping[str, Backend] | None = None


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    db_path: Path
    summary: RunSummary


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def call_id(model: str, call: PromptCall) -> str:
    return f"{model}/{call.call_key}"


def run_pilot(pilot: LoadedPilot, options: RunOptions | None = None) -> RunResult:
    """Run every enabled mode of `pilot` on every model, storing as it goes; return the summary."""
    opts = options or RunOptions()
    calls = build_calls(pilot, opts.limit)
    db_path = opts.out_dir / DB_NAME
    db = store.connect(db_path)
    try:
        run_id = _start_or_resume(db, pilot, opts)
        done = store.finished_call_ids(db, run_id)
        progress = Progress(total=len(calls) * len(pilot.spec.models))
        progress.done = sum(1 for m in pilot.spec.models for c in calls if call_id(m.name, c) in done)
        opts.on_progress(progress)
        environment: dict[str, Any] = {
            "python": platform.python_version(),
            "host": platform.node(),
            "platform": platform.platform(),
        }
        for model in pilot.spec.models:
            todo = [c for c in calls if call_id(model.name, c) not in done]
            if todo:
                environment[model.name] = _run_model(db, run_id, pilot, model, todo, progress, opts)
        _record_environment(db, run_id, environment)
        return finish(db, db_path, pilot, run_id, opts.out_dir)
    except KeyboardInterrupt:
        # Everything finished is already committed; mark the run so history shows it.
        store.finish_run(db, run_id, status="interrupted", finished_at=now(), summary=None)
        raise
    finally:
        db.close()


def _start_or_resume(db: sqlite3.Connection, pilot: LoadedPilot, opts: RunOptions) -> str:
    if opts.resume is None:
        run_id = new_run_id()
        store.insert_run(
            db,
            run_id=run_id,
            pilot=pilot.name,
            pilot_path=str(pilot.path),
            pilot_sha256=pilot.sha256,
            pilot_json=pilot.spec.model_dump_json(),
            started_at=now(),
            item_limit=opts.limit,
            environment={},
        )
        return run_id
    row = store.get_run(db, opts.resume)
    if row is None:
        raise RoiError(f"no run {opts.resume!r} in {opts.out_dir / DB_NAME}")
    if row["pilot_sha256"] != pilot.sha256:
        raise RoiError(
            f"run {opts.resume} was made from a different version of {pilot.path}; "
            "resuming would mix two pilots. Start a new run instead."
        )
    if row["item_limit"] != opts.limit:
        raise RoiError(f"run {opts.resume} used --limit {row['item_limit']}; resume with the same limit")
    return opts.resume


def _run_model(
    db: sqlite3.Connection,
    run_id: str,
    pilot: LoadedPilot,
    model: ModelSpec,
    todo: list[PromptCall],
    progress: Progress,
    opts: RunOptions,
) -> dict[str, str]:
    backend = (opts.backends or {}).get(model.name) or create_backend(model, pilot.path.parent, opts.status)
    spaces = AnswerSpaces.of(pilot)
    by_key = {call_id(model.name, c): c for c in todo}
    requests = [GenerationRequest(k, c.prefix, c.suffix, c.max_new_tokens, c.stop) for k, c in by_key.items()]
    progress.model = model.name
    try:
        for result in backend.generate(requests):
            call = by_key[result.key]
            _store_result(db, run_id, pilot, model, call, result, spaces)
            progress.done += 1
            progress.failed += result.error is not None
            opts.on_progress(progress)
        return backend.describe()
    finally:
        if opts.backends is None or model.name not in opts.backends:
            backend.close()


def _store_result(
    db: sqlite3.Connection,
    run_id: str,
    pilot: LoadedPilot,
    model: ModelSpec,
    call: PromptCall,
    result: GenerationResult,
    spaces: AnswerSpaces,
) -> None:
    cost = call_cost_usd(
        model,
        latency_s=result.latency_s,
        prompt_tokens=result.prompt_tokens,
        output_tokens=result.output_tokens,
        cached_prompt_tokens=result.cached_prompt_tokens,
    )
    row = store.CallRow(
        call_id=result.key,
        model=model.name,
        mode=call.mode,
        prompt=call.prompt,
        raw_output=result.text,
        prompt_tokens=result.prompt_tokens,
        cached_prompt_tokens=result.cached_prompt_tokens,
        output_tokens=result.output_tokens,
        latency_s=result.latency_s,
        backoff_s=result.backoff_s,
        retries=result.retries,
        cost_usd=cost if result.error is None else None,
        n_items=len(call.queries),
        error=result.error,
        finished_at=now(),
    )
    items = [] if result.text is None else grade_call(pilot, model.name, call, result.key, result.text, spaces)
    store.record_call(db, run_id, row, items)


def _record_environment(db: sqlite3.Connection, run_id: str, environment: dict[str, Any]) -> None:
    row = store.get_run(db, run_id)
    merged = json.loads(row["environment_json"]) if row else {}
    merged.update(environment)
    with store.transaction(db):
        db.execute("UPDATE runs SET environment_json = ? WHERE run_id = ?", (json.dumps(merged), run_id))


def finish(db: sqlite3.Connection, db_path: Path, pilot: LoadedPilot, run_id: str, out_dir: Path) -> RunResult:
    """Summarise a run from the store and write its folder: items.csv, calls.csv, summary.json."""
    items = store.items_frame(db, run_id)
    calls = store.calls_frame(db, run_id)
    row = store.get_run(db, run_id)
    limit = row["item_limit"] if row else None
    summary = summarize(run_id, pilot.name, limit, items, calls, seed=pilot.spec.seed)
    run_dir = out_dir / pilot.name / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    items.to_csv(run_dir / "items.csv", index=False)
    calls.drop(columns=["prompt"]).to_csv(run_dir / "calls.csv", index=False)
    failed = int(calls["error"].notna().sum()) if len(calls) else 0
    status = "complete" if failed == 0 else "complete_with_failures"
    (run_dir / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
    store.finish_run(db, run_id, status=status, finished_at=now(), summary=summary.to_dict())
    return RunResult(run_id, run_dir, db_path, summary)
