"""Running a pilot: plan the calls, send them to each model's backend, grade and store every finished
call at once (so an interrupted run keeps it), then summarise and write the run folder."""

from __future__ import annotations

import dataclasses
import json
import platform
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from roi import cache, events, locking, measured_plan, notify, store
from roi.backends import (
    Backend,
    BatchProgress,
    GenerationRequest,
    GenerationResult,
    StopsAtDeadline,
    SubmitsBatches,
    check_credentials,
    create_backend,
    preflight,
)
from roi.baseline import BaselineCheck
from roi.costs import result_cost_usd
from roi.decision import Decision
from roi.errors import ExitCode, Problem, RoiError, RunFailed
from roi.evaluation import RunEvaluation, evaluate_run
from roi.files import private_dir, write_atomic
from roi.fingerprint import fingerprint, pilot_settings
from roi.formats import usd
from roi.grading import AnswerSpaces, failed_call_items, grade_call
from roi.metrics import RunSummary
from roi.pilot import LoadedPilot, ModelSpec, Pilot
from roi.planning import Budget, check_budgetable, generate_within
from roi.probe.figures import MixtureFigures
from roi.probe.run import run as run_probe
from roi.prompts import PromptCall, build_calls
from roi.redaction import clip, safe_url
from roi.report import ReportFiles, check_language, write_report
from roi.run_decision import RunEnding


@dataclass
class Progress:
    """What a progress display needs; the runner calls `on_progress` after every stored call."""

    total: int
    done: int = 0
    failed: int = 0
    model: str = ""
    in_batch: int = 0  # calls a batch job has finished that are not stored yet (see roi/backends/batch.py)
    note: str = ""  # what the current model is waiting for, e.g. a batch job's state


@dataclass
class RunOptions:
    out_dir: Path = field(default_factory=lambda: Path("reports"))
    limit: int | None = None
    resume: str | None = None
    on_progress: Callable[[Progress], None] = lambda p: None
    status: Callable[[str], None] = lambda s: None
    # Tests inject backends by model name here; a pilot file can only name the registered ones.
    backends: Mapping[str, Backend] | None = None
    max_cost_usd: float | None = None  # the run's whole spend may not pass this (roi run --max-cost)
    wait: bool = False  # queue behind a running run of the same pilot instead of failing
    fresh: bool = False  # send every call to the model (no cache lookups)
    emit: events.Emit = events.ignore  # structured events (roi run --log-json)
    max_minutes: float | None = None  # overall run deadline (roi run --max-minutes); None: the pilot's limits


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    db_path: Path
    evaluation: RunEvaluation  # the finished run summarised, decided and checked against its baseline
    stopped: str | None = None  # why the run ended before all calls were made (--max-cost, deadline), if it did
    incomplete: list[str] = field(default_factory=list)  # why the evidence is incomplete (exit 4), if it is

    @property
    def summary(self) -> RunSummary:
        return self.evaluation.summary

    @property
    def decision(self) -> Decision:
        return self.evaluation.decision  # the staged-rollout decision of report.html

    @property
    def check(self) -> BaselineCheck:
        return self.evaluation.check

    @property
    def probe(self) -> list[MixtureFigures]:
        return self.evaluation.probe

    @property
    def exit_code(self) -> ExitCode:
        if self.incomplete:
            return ExitCode.INCOMPLETE
        return ExitCode.REGRESSED if self.check.regressed else ExitCode.OK


@dataclass(frozen=True)
class Stop:
    """Why a run ended before every call was made: its status and a note for people."""

    status: str  # stopped_max_cost | stopped_deadline
    note: str


@dataclass(frozen=True)
class Deadline:
    """The run's overall deadline, on the monotonic clock (None: no deadline)."""

    at: float | None = None
    minutes: float | None = None

    @classmethod
    def after(cls, minutes: float | None) -> Deadline:
        return cls(None if minutes is None else time.monotonic() + 60.0 * minutes, minutes)

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def seconds_left(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def call_id(model: str, call: PromptCall) -> str:
    return f"{model}/{call.call_key}"


def run_pilot(pilot: LoadedPilot, options: RunOptions | None = None) -> RunResult:
    """Run every enabled mode of `pilot` on every model, storing as it goes; return the summary.
    One run per pilot at a time (roi/locking.py); a run the last one left unfinished is resumed."""
    opts = options or RunOptions()
    check_credentials(pilot.spec.models, skip=opts.backends or {})
    preflight(pilot, skip=opts.backends or {})
    deadline = Deadline.after(opts.max_minutes or pilot.spec.limits.max_run_minutes)
    with locking.PilotLock(
        opts.out_dir,
        pilot.name,
        wait=opts.wait,
        timeout_s=deadline.seconds_left(),
        on_wait=lambda h: _waiting(opts, h),
        refused="This run did not start; use --wait to queue behind it.",
    ) as lock:
        if lock.previous is not None:
            opts.status(f"Took over the lock of a run that is gone ({lock.previous.describe()})")
            opts.emit("lock_taken_over", previous_pid=lock.previous.pid, previous_run_id=lock.previous.run_id)
        return _run_pilot_locked(pilot, opts, lock, deadline)


def _waiting(opts: RunOptions, holder: locking.Holder) -> None:
    opts.status(f"Waiting for the running run of this pilot ({holder.describe()}) to end")
    opts.emit("lock_wait", holder_pid=holder.pid, holder_run_id=holder.run_id)


def _run_pilot_locked(pilot: LoadedPilot, opts: RunOptions, lock: locking.PilotLock, deadline: Deadline) -> RunResult:
    calls = build_calls(pilot, opts.limit)
    if opts.max_cost_usd is not None:
        check_budgetable(pilot.spec.models)
    db_path = opts.out_dir / store.DB_NAME
    db = store.connect(db_path)
    run_id: str | None = None
    held = _Held()  # a loaded backend the probe uses next
    try:
        opts = _auto_resume(db, pilot, opts)
        run_id = _start_or_resume(db, pilot, opts)
        lock.note_run(run_id)
        opts.emit("run_started", pilot=pilot.name, run_id=run_id, resumed=opts.resume is not None, limit=opts.limit)
        budget = _budget(db, run_id, opts.max_cost_usd)
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
            if not deadline.passed():
                described = _run_model(db, run_id, pilot, model, todo, progress, opts, budget, deadline, held)
                environment |= {model.name: described} if described else {}
        probe_skipped = pilot.spec.probe is not None and deadline.passed()
        if pilot.spec.probe is not None and not probe_skipped:  # the probe is its own mode
            environment["probe"], finished = run_probe(
                db, run_id, pilot, lambda m: _probe_backend(m, pilot, opts, held), opts.status, deadline.passed
            )
            probe_skipped = not finished  # the deadline came during the probe: --resume probes the rest
        store.merge_environment(db, run_id, environment)
        stop = _deadline_stop(deadline, progress, probe_skipped) or _budget_stop(budget)
        return _after_run(pilot, finish(db, db_path, pilot, run_id, opts.out_dir, stop), opts)
    except BaseException as error:
        # Everything finished is already committed; mark the run so history shows how it ended (and a
        # plain re-run resumes it) instead of leaving it `running`.
        if run_id is not None:
            ended = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            store.finish_run(db, run_id, status=ended, finished_at=now(), summary=None)
        raise
    finally:
        held.release()
        db.close()


def _auto_resume(db: sqlite3.Connection, pilot: LoadedPilot, opts: RunOptions) -> RunOptions:
    """A plain re-run continues the run a killed (or interrupted) process left: we hold the pilot's
    lock, so no live process owns it."""
    if opts.resume is not None:
        return opts
    found = store.unfinished_run(db, pilot.name, pilot.sha256, opts.limit)
    if found is None:
        return opts
    opts.status(f"Resuming run {found}, left unfinished by an earlier process")
    opts.emit("run_resumed", run_id=found)
    return dataclasses.replace(opts, resume=found)


def _after_run(pilot: LoadedPilot, result: RunResult, opts: RunOptions) -> RunResult:
    """Notify on a change against the baseline (never fatal) and log the end of the run."""
    check = result.check
    report = result.run_dir / "report.html"
    sent = notify.notify(pilot.spec.notify, pilot.name, check, str(report))
    opts.emit(
        "run_finished",
        run_id=result.run_id,
        decision={k: (check.decision_now or {}).get(k) for k in ("model", "stage", "outcome")},
        reference=check.reference,
        regressed=check.regressed,
        regressions=[r.describe() for r in check.regressions],
        notify=sent,
    )
    return result


def stored_pilot_json(spec: Pilot) -> str:
    """The pilot as kept with its run: base URLs without user-info or secret-looking query values."""
    models = [m.model_copy(update={"base_url": safe_url(m.base_url)}) if m.base_url else m for m in spec.models]
    return spec.model_copy(update={"models": models}).model_dump_json()


def _start_or_resume(db: sqlite3.Connection, pilot: LoadedPilot, opts: RunOptions) -> str:
    if opts.resume is None:
        run_id = new_run_id()
        settings = pilot_settings(pilot)
        store.insert_run(
            db,
            run_id=run_id,
            pilot=pilot.name,
            pilot_path=str(pilot.path),
            pilot_sha256=pilot.sha256,
            pilot_json=stored_pilot_json(pilot.spec),
            started_at=now(),
            item_limit=opts.limit,
            environment={},
            settings=settings,
            fingerprint=fingerprint(settings),
        )
        return run_id
    row = store.get_run(db, opts.resume)
    if row is None:
        raise RoiError(f"no run {opts.resume!r} in {opts.out_dir / store.DB_NAME}")
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
    budget: Budget | None = None,
    deadline: Deadline = Deadline(),
    held: _Held | None = None,
) -> dict[str, str] | None:
    """Send `model`'s calls not yet finished, then its measured plan's (roi/measured_plan.py), on one
    backend built only when a call must go to the model. Returns what the backend says of itself (None
    when nothing was sent or answered from the cache). A backend the probe uses next is left open in
    `held`: loading the model again would cost the probe its load time."""
    sender = _Sender(
        db, run_id, pilot, model, progress, opts, budget, deadline, held or _Held(), keep=_probes(pilot, model)
    )
    try:
        sender.send(todo)
        if not deadline.passed() and not (budget is not None and budget.skipped):
            planned = measured_plan.calls_for(db, run_id, pilot, model, opts.limit)
            done = store.finished_call_ids(db, run_id)
            progress.total += len(planned)
            progress.done += sum(1 for c in planned if call_id(model.name, c) in done)
            sender.send([c for c in planned if call_id(model.name, c) not in done], "plan_calls")
        return sender.described()
    finally:
        sender.close()


@dataclass
class _Sender:
    """One model's calls: answered from the response cache where possible, else sent to its backend
    (each mode as a batch of its own), each stored as it finishes."""

    db: sqlite3.Connection
    run_id: str
    pilot: LoadedPilot
    model: ModelSpec
    progress: Progress
    opts: RunOptions
    budget: Budget | None
    deadline: Deadline
    held: _Held
    backend: Backend | None = None
    answered_from_cache: bool = False
    keep: bool = False  # leave the backend open in `held` for the probe instead of closing it

    def send(self, todo: list[PromptCall], event: str = "model_calls") -> None:
        db, pilot, model, progress, opts = self.db, self.pilot, self.model, self.progress, self.opts
        if not todo or self.deadline.passed():
            return
        spaces = AnswerSpaces.of(pilot)
        by_key = {call_id(model.name, c): c for c in todo}
        requests = [c.request(k) for k, c in by_key.items()]
        identity = cache.model_identity(model, pilot.path.parent)
        keys = {r.key: cache.cache_key(identity, r) for r in requests}
        progress.model = model.name
        hits, requests = cache.split(db, identity, requests, fresh=opts.fresh)  # before any backend is built
        for hit in hits:
            key = hit.request.key
            _store_result(db, self.run_id, pilot, model, by_key[key], hit.result, spaces, keys[key], reused=True)
            progress.done += 1
            opts.on_progress(progress)
        self.answered_from_cache |= bool(hits)
        opts.emit(event, model=model.name, reused=len(hits), to_send=len(requests))
        if requests:
            self._generate(self._backend(), requests, by_key, keys, spaces)

    def _backend(self) -> Backend:
        if self.backend is None:
            injected = (self.opts.backends or {}).get(self.model.name)
            if not injected:
                self.held.release()  # never two loaded models at once
            self.backend = injected or _load_backend(self.model, self.pilot, self.opts)
            if isinstance(self.backend, StopsAtDeadline):
                self.backend.stop_at(self.deadline.at)
            if isinstance(self.backend, SubmitsBatches):
                jobs = store.BatchJobs(
                    self.db, self.run_id, self.model.name, store.batch_folder(self.opts.out_dir, self.run_id)
                )
                self.backend.attach(jobs, lambda job: _batch_progress(job, self.progress, self.opts))
        return self.backend

    def _generate(
        self,
        backend: Backend,
        requests: list[GenerationRequest],
        by_key: dict[str, PromptCall],
        keys: dict[str, str | None],
        spaces: AnswerSpaces,
    ) -> None:
        budget, deadline, progress = self.budget, self.deadline, self.progress
        # One batch job holds every call: split by mode, the second job would wait for the first.
        batches = [requests] if isinstance(backend, SubmitsBatches) else _by_mode(requests, by_key)
        for batch in batches:
            results = backend.generate(batch) if budget is None else generate_within(backend, batch, budget)
            for result in results:
                call = by_key[result.key]
                _store_result(self.db, self.run_id, self.pilot, self.model, call, result, spaces, keys[result.key])
                progress.done += 1
                progress.failed += result.error is not None
                self.opts.on_progress(progress)
                if deadline.passed():
                    break  # dropping the generator lets the backend drop what is in flight
            if deadline.passed():
                break

    def described(self) -> dict[str, str] | None:
        if self.backend is not None:
            return self.backend.describe()
        return {"cache": "every call answered from the response cache"} if self.answered_from_cache else None

    def close(self) -> None:
        if self.backend is None or self.model.name in (self.opts.backends or {}):
            return
        if self.keep:
            self.held.keep(self.model.name, self.backend)
        else:
            self.backend.close()


@dataclass
class _Held:
    """At most one loaded backend kept open between a model's calls and its probe: it is closed before
    any other model loads, since two local models may not fit in memory together."""

    name: str | None = None
    backend: Backend | None = None

    def keep(self, name: str, backend: Backend) -> None:
        self.release()
        self.name, self.backend = name, backend

    def take(self, name: str) -> Backend | None:
        """The backend kept for `name` (the caller closes it), else None with anything kept closed."""
        backend = self.backend if self.name == name else None
        if backend is None:
            self.release()
        self.name = self.backend = None
        return backend

    def release(self) -> None:
        if self.backend is not None:
            self.backend.close()
        self.name = self.backend = None


def _probes(pilot: LoadedPilot, model: ModelSpec) -> bool:
    probe = pilot.spec.probe
    return probe is not None and (probe.models is None or model.name in probe.models)


def _by_mode(requests: list[GenerationRequest], calls: dict[str, PromptCall]) -> list[list[GenerationRequest]]:
    """Each mode's requests as a batch of their own: a local engine's machine time per mode is then what
    that mode costs when it runs alone, as it would in production, not a share of a batch with the other."""
    modes: dict[str, list[GenerationRequest]] = {}
    for request in requests:
        modes.setdefault(calls[request.key].mode, []).append(request)
    return list(modes.values())


def _load_backend(model: ModelSpec, pilot: LoadedPilot, opts: RunOptions) -> Backend:
    """The model's backend; a model that cannot load fails the run (exit 1), whatever the reason."""
    try:
        return create_backend(model, pilot.path.parent, opts.status)
    except RoiError as error:
        raise RunFailed(f"model '{model.name}' could not load: {clip(str(error), 500)}") from None
    except (OSError, ValueError, RuntimeError, ImportError) as error:  # what loading libraries raise
        reason = clip(f"{type(error).__name__}: {error}", 500)
        raise RunFailed(f"model '{model.name}' could not load: {reason}") from error


def _batch_progress(job: BatchProgress, progress: Progress, opts: RunOptions) -> None:
    progress.in_batch = 0 if job.finished else job.completed + job.failed
    progress.note = "" if job.finished else f"batch {job.status} {job.completed + job.failed}/{job.total}"
    opts.on_progress(progress)


def _store_result(
    db: sqlite3.Connection,
    run_id: str,
    pilot: LoadedPilot,
    model: ModelSpec,
    call: PromptCall,
    result: GenerationResult,
    spaces: AnswerSpaces,
    cache_key: str | None = None,
    reused: bool = False,
) -> None:
    cost = result_cost_usd(model, result)
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
        cache_key=cache_key,
        reused=reused,
        machine_s=result.machine_s,
    )
    items = (
        failed_call_items(model.name, call, result.key)
        if result.error is not None or result.text is None
        else grade_call(pilot, model.name, call, result.key, result.text, spaces)
    )
    store.record_call(db, run_id, row, items)


def _budget(db: sqlite3.Connection, run_id: str, max_cost_usd: float | None) -> Budget | None:
    """The --max-cost budget, less what this run (when resumed) has already spent."""
    if max_cost_usd is None:
        return None
    return Budget(limit_usd=max_cost_usd, spent_usd=store.spent_usd(db, run_id))


def _budget_stop(budget: Budget | None) -> Stop | None:
    """Why --max-cost ended the run early, or None when it did not."""
    if budget is None or not budget.skipped:
        return None
    return Stop(
        "stopped_max_cost",
        f"stopped at --max-cost {usd(budget.limit_usd)}: spent {usd(budget.spent_usd)}, "
        f"{budget.skipped} calls not sent",
    )


def _deadline_stop(deadline: Deadline, progress: Progress, probe_skipped: bool) -> Stop | None:
    """Why the run deadline ended the run early, or None when it did not."""
    if not deadline.passed() or (progress.done >= progress.total and not probe_skipped):
        return None
    missing = f"{progress.total - progress.done} calls" + (" and (the rest of) the probe" if probe_skipped else "")
    return Stop("stopped_deadline", f"stopped at the run deadline ({deadline.minutes:g} min): {missing} not made")


def finish(
    db: sqlite3.Connection, db_path: Path, pilot: LoadedPilot, run_id: str, out_dir: Path, stop: Stop | None = None
) -> RunResult:
    """Evaluate a run whose calls are done, once; write its folder (items.csv, calls.csv, summary.json,
    report.html, report.json); then record its end, summary and decision in the store. `stop` says
    why the run ended early (--max-cost, the run deadline): what is done is kept."""
    if stop is not None:
        status = stop.status
    else:
        status = "complete" if store.failed_call_count(db, run_id) == 0 else "complete_with_failures"
    evaluation = evaluate_run(db, run_id, RunEnding(status, now()))
    summary = evaluation.summary_data() | ({"stopped": stop.note} if stop is not None else {})
    run_dir = private_dir(out_dir / pilot.name / run_id)
    write_atomic(run_dir / "items.csv", evaluation.items.to_csv(index=False))
    write_atomic(run_dir / "calls.csv", evaluation.calls.drop(columns=["prompt"]).to_csv(index=False))
    write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_report(evaluation, run_dir)
    store.finish_run(
        db,
        run_id,
        status=status,
        finished_at=evaluation.run["finished_at"],
        summary=summary,
        decision_brief=evaluation.decision_brief,
    )
    incomplete = failed_models(evaluation.summary, pilot.spec.limits.incomplete_failed_call_rate)
    if stop is not None:  # calls left unmade: the evidence is not what the pilot asked for
        incomplete.append(stop.note)
    return RunResult(run_id, run_dir, db_path, evaluation, None if stop is None else stop.note, incomplete)


def failed_models(summary: RunSummary, max_rate: float) -> list[str]:
    """One line per model whose share of failed calls passes `max_rate` (or whose calls all failed)."""
    lines = []
    for model in dict.fromkeys(m.model for m in summary.modes):
        calls = sum(m.calls for m in summary.modes if m.model == model)
        failed = sum(m.failed_calls for m in summary.modes if m.model == model)
        if calls and (failed == calls or failed / calls > max_rate):
            lines.append(f"{model}: {failed} of {calls} calls failed (limit {max_rate:.0%})")
    return lines


def rebuild_report(out_dir: Path, run_id: str, language: str | None = None) -> ReportFiles:
    """`roi report`: rebuild a stored run's report into OUT/<pilot>/<run-id>/ (OUT holds the store)."""
    check_language(language)
    db = store.open_existing(out_dir)
    try:
        if store.get_run(db, run_id) is None:
            path = out_dir / store.DB_NAME
            raise RoiError([Problem(f"no run {run_id!r} in {path}", str(path), None, "RUN_ID")])
        evaluation = evaluate_run(db, run_id)
    finally:
        db.close()
    return write_report(evaluation, out_dir / evaluation.run["pilot"] / run_id, language)


def _probe_backend(model: ModelSpec, pilot: LoadedPilot, opts: RunOptions, held: _Held) -> tuple[Backend, bool]:
    """An injected backend (kept open), the one the model's calls left open, or a new one (both closed
    after the probe); one that cannot load fails the run (exit 1) like a model of the calls: the run is
    already stored, so it is no bad input (2)."""
    injected = (opts.backends or {}).get(model.name)
    if injected:
        return injected, False
    kept = held.take(model.name)
    return (kept if kept is not None else _load_backend(model, pilot, opts)), True
