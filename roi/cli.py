"""The `roi` command: a thin shell over the library. Exit codes: `roi.errors.ExitCode` (the README's table)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from roi import baseline, console, store
from roi import compare as comparing
from roi import history as past
from roi import purge as purging
from roi.backends import preflight
from roi.errors import ExitCode, RoiError, RunFailed, render_together
from roi.events import EventLog, ignore
from roi.files import write_atomic
from roi.pilot import LoadedPilot, load_pilot, pilot_name
from roi.planning import plan_pilot
from roi.redaction import clip
from roi.runner import RunOptions, RunResult, rebuild_report, run_pilot
from roi.scaffold import PilotDraft, parse_task, schema_text, write_scaffold


class _PlainFlags:
    """Help without a `<bool>` type beside flags such as --quiet and --help (typer shows one)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
        return params


class Command(_PlainFlags, TyperCommand):
    pass


class Group(_PlainFlags, TyperGroup):
    pass


app = typer.Typer(
    cls=Group,
    rich_markup_mode="markdown",  # reflows paragraphs to the terminal's width
    help="Evidence for mixed (task-superposition) prompting.\n\nExit codes:\n\n"
    + "\n".join(f"- **{int(code)}** {code.meaning}" for code in ExitCode),
    pretty_exceptions_show_locals=False,  # a traceback with locals could print an API key
    no_args_is_help=True,
    add_completion=False,
)

PilotArg = Annotated[Path, typer.Argument(help="The pilot YAML file.", metavar="PILOT", show_default=False)]
WideOption = Annotated[bool, typer.Option("--wide", help="More columns and intervals inline (wide terminals, files).")]


@app.command(cls=Command)
def validate(pilot: PilotArg) -> None:
    """Check a pilot file and its data files without running any model."""
    loaded = _load(pilot)
    preflight(loaded)
    items = sum(len(t.eval_items) for t in loaded.tasks)
    warned = f", {len(loaded.warnings)} warning(s)" if loaded.warnings else ""
    console.path_line(
        f"{pilot}: OK — {len(loaded.tasks)} tasks, {items} eval items, {len(loaded.spec.models)} model(s){warned}"
    )


def _load(pilot: Path, quiet: bool = False) -> LoadedPilot:
    """Load a pilot and show its warnings (on stderr)."""
    loaded = load_pilot(pilot)
    if not quiet:
        for warning in render_together(loaded.warnings):
            console.warn(warning)
    return loaded


@app.command(cls=Command)
def run(
    pilot: PilotArg,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N eval items of each task.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for roi.db and run folders.")] = Path("reports"),
    resume: Annotated[str | None, typer.Option(help="Continue this run id, skipping finished calls.")] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost", min=0, help="Stop before the run's spend (USD) would pass this; keep what is done; exit 4."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print only a one-line result (for cron).")] = False,
    log_json: Annotated[
        Path | None, typer.Option("--log-json", help="Append structured events (JSON lines) to this file.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="If the pilot is already running, wait for it to end.")] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Call the models even when the response cache holds the answer.")
    ] = False,
    max_minutes: Annotated[
        float | None,
        typer.Option("--max-minutes", min=0.01, help="Stop the run after this long (lock wait included); exit 4."),
    ] = None,
    wide: WideOption = False,
) -> None:
    """Run single and mixed prompting side by side on every model of the pilot.

    A re-run after a crash resumes the unfinished run of the pilot. Exit 3: the decision dropped a stage
    or a gate regressed against the baseline. Exit 4: too many of a model's calls failed, or the run
    deadline or --max-cost stopped the run."""
    log = EventLog(log_json) if log_json is not None else None
    try:
        emit = log.emit if log is not None else ignore
        options = RunOptions(
            out, limit, resume, max_cost_usd=max_cost, wait=wait, fresh=fresh, emit=emit, max_minutes=max_minutes
        )
        loaded = _load(pilot, quiet)
        result = _run(loaded, options, quiet)
    except BaseException as error:
        if log is not None:
            log.emit("run_failed", error=type(error).__name__, message=clip(str(error), 500))
        if isinstance(error, KeyboardInterrupt):  # typer would exit 130 without a word
            console.interrupted()
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        raise
    finally:
        if log is not None:
            log.close()
    if quiet:
        console.quiet_line(_one_line(result))
    else:
        _show_run(result, loaded, wide)
    if result.exit_code != ExitCode.OK:
        raise typer.Exit(result.exit_code)


def _show_run(result: RunResult, pilot: LoadedPilot, wide: bool) -> None:
    tasks, models = [t.spec.name for t in pilot.tasks], [m.name for m in pilot.spec.models]
    console.show_summary(result.summary, str(result.run_dir), tasks, models, wide)
    if result.probe:
        console.show_probe(result.probe)
    if result.stopped is not None:
        console.show_stop(result.stopped, result.run_id)
    console.show_decision(result.decision, str(result.run_dir / "report.html"), result.evaluation.briefing)
    console.show_check(result.check, result.evaluation.settings)
    if result.incomplete:
        console.show_incomplete(result.incomplete)


def _run(loaded: LoadedPilot, options: RunOptions, quiet: bool) -> RunResult:
    if quiet:
        return run_pilot(loaded, options)
    with console.run_progress() as (_, update):
        options.on_progress, options.status = update, console.status
        return run_pilot(loaded, options)


def _one_line(result: RunResult) -> str:
    d, check = result.decision, result.check
    decision = f"{d.model} stage {d.stage} {d.stage_name} ({d.outcome})"
    if check.reference is None:
        drift = "no baseline"
    elif check.regressions:
        drift = f"{len(check.regressions)} regression(s) vs {check.reference}: " + "; ".join(
            r.describe() for r in check.regressions
        )
    else:
        drift = f"no regression vs {check.reference}"
    stopped = f"; {result.stopped}" if result.stopped else ""
    failed = "".join(f"; {reason}" for reason in result.incomplete if reason not in (result.stopped or ""))
    return (
        f"{result.summary.pilot} {result.run_id}: {decision}; {drift}{stopped}{failed}; "
        f"exit {int(result.exit_code)}; {result.run_dir}"
    )


@app.command(cls=Command)
def plan(
    pilot: PilotArg,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N eval items of each task.")] = None,
    out: Annotated[Path, typer.Option(help="Folder of roi.db: earlier runs there give time estimates.")] = Path(
        "reports"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Calls, tokens, cost and time a run would take, per model and mode, without calling any model."""
    planned = plan_pilot(_load(pilot), limit, out / store.DB_NAME)
    if as_json:
        console.out.print_json(json.dumps(asdict(planned), default=str))
    else:
        console.show_plan(planned)


@app.command(cls=Command)
def report(
    run_id: Annotated[str, typer.Argument(help="The run id (the name of its run folder).")],
    out: Annotated[
        Path,
        typer.Option(
            help="The folder given to roi run --out: it holds roi.db, and the report goes to OUT/PILOT/RUN_ID/."
        ),
    ] = Path("reports"),
    language: Annotated[
        str | None,
        typer.Option(
            help="en or ja (default: the pilot's report.language). Another language than the pilot's is "
            "written beside it, as report.LANGUAGE.html and report.LANGUAGE.json (e.g. report.ja.html)."
        ),
    ] = None,
) -> None:
    """Rebuild a run's report.html and report.json from the store (the run's folder is recreated if gone)."""
    files = rebuild_report(out, run_id, language)
    console.show_decision(files.decision, str(files.html), files.briefing)


OutOption = Annotated[Path, typer.Option(help="Folder holding roi.db (as given to roi run --out).")]


@contextmanager
def _store(out: Path) -> Iterator[sqlite3.Connection]:
    db = store.open_existing(out)
    try:
        yield db
    finally:
        db.close()


@app.command(cls=Command)
def history(
    pilot: Annotated[str | None, typer.Argument(help="A pilot name or pilot file (default: every pilot).")] = None,
    out: OutOption = Path("reports"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    last: Annotated[int | None, typer.Option(min=1, help="Only the N newest runs.")] = None,
    wide: WideOption = False,
) -> None:
    """Past runs, newest first: date, models, decision and headline figures; ★ marks the baseline."""
    name = pilot_name(pilot) if pilot and pilot.endswith((".yaml", ".yml")) else pilot
    with _store(out) as db:
        rows = past.history(db, name, last)
    if as_json:
        console.out.print_json(json.dumps(past.to_json(rows), default=str))
    else:
        console.show_history(rows, wide)


@app.command(cls=Command)
def compare(
    run_a: Annotated[str, typer.Argument(help="The earlier run id (A).")],
    run_b: Annotated[str, typer.Argument(help="The later run id (B); differences are B minus A.")],
    out: OutOption = Path("reports"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    wide: WideOption = False,
) -> None:
    """Per model x task x mode changes between two runs, paired on the items both answered."""
    with _store(out) as db:
        result = comparing.compare_runs(db, run_a, run_b)
    if as_json:
        console.out.print_json(json.dumps(result.to_dict(), default=str))
    else:
        console.show_comparison(result, wide)


@app.command(cls=Command)
def accept(
    run_id: Annotated[str, typer.Argument(help="The complete run to accept as its pilot's baseline.")],
    out: OutOption = Path("reports"),
) -> None:
    """Accept a run as its pilot's baseline: later runs are compared with it (exit 3 on a regression)."""
    with _store(out) as db:
        pilot = baseline.accept(db, run_id)
    console.quiet_line(f"Run {run_id} is now the baseline of pilot {pilot}.")


@app.command(cls=Command)
def purge(
    before: Annotated[
        str | None, typer.Option(help="Remove runs started before this date: 2026-01-31, or 90d (90 days ago).")
    ] = None,
    pilot: Annotated[str | None, typer.Option(help="Only this pilot's runs; given alone: the whole pilot.")] = None,
    cache_before: Annotated[
        str | None, typer.Option("--cache-before", help="Calls before this date leave the response cache.")
    ] = None,
    include_baselines: Annotated[
        bool, typer.Option("--include-baselines", help="Remove accepted baselines too (kept by default).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")] = False,
    out: OutOption = Path("reports"),
) -> None:
    """Remove stored runs (prompts, outputs, eval items, run folders) or cached answers, then compact the store."""
    result = purging.purge(
        out,
        before=None if before is None else purging.parse_before(before),
        pilot=pilot,
        cache_before=None if cache_before is None else purging.parse_before(cache_before),
        include_baselines=include_baselines,
        dry_run=dry_run,
    )
    console.show_purge(result)


@app.command(cls=Command)
def init(
    name: Annotated[str | None, typer.Argument(help="The new pilot's name (asked when not given).")] = None,
    folder: Annotated[Path, typer.Option("--dir", help="Where to write the pilot and its data.")] = Path("."),
    task: Annotated[
        list[str] | None,
        typer.Option(help="A task: NAME:CHOICE/CHOICE/... (choice scorer) or NAME (exact); repeat for more."),
    ] = None,
    unit: Annotated[str | None, typer.Option(help="The business unit.")] = None,
    owner: Annotated[str | None, typer.Option(help="The analyst's e-mail.")] = None,
    model: Annotated[str, typer.Option(help="embedded, a local model folder or .gguf, or openai:MODEL.")] = "embedded",
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Start a new pilot: a commented YAML file, example CSV files and the schema for editors.

    Without --task the pilot holds two small worked tasks; it validates and runs as written
    (`roi run NAME.yaml --limit 2`). Questions are asked only on a terminal; in scripts give NAME."""
    ask = console.ask if console.interactive() else (lambda question, default: default)
    draft = PilotDraft(
        name=name or ask("Pilot name", "my-pilot"),
        business_unit=unit or ask("Business unit", "Your unit"),
        owner=owner or ask("Owner (e-mail)", "analyst@example.com"),
        model=model,
        tasks=[parse_task(t) for t in task or _ask_tasks(ask)],
    )
    written = write_scaffold(folder, draft, force)
    for path in written:
        console.path_line(f"wrote {path}")
    console.note("Next: edit the data files, then")
    console.path_line(f"  roi validate {written[0]}")
    console.path_line(f"  roi run {written[0]} --limit 2")


def _ask_tasks(ask: Callable[[str, str], str]) -> list[str]:
    answer = ask("Tasks, comma-separated (NAME:CHOICE/CHOICE or NAME; empty: two worked examples)", "")
    return [t for t in (part.strip() for part in answer.split(",")) if t]


@app.command(cls=Command)
def schema(
    out: Annotated[Path | None, typer.Option(help="Write the schema to this file instead of printing it.")] = None,
) -> None:
    """The pilot file's JSON Schema, for editors (docs/pilot-format.md: VS Code's YAML extension)."""
    if out is None:
        console.raw(schema_text())
    else:
        write_atomic(out, schema_text())
        console.path_line(f"wrote {out}")


def main() -> None:
    try:
        code = app(standalone_mode=False)  # click returns typer.Exit's code here instead of raising
        if isinstance(code, int) and code != 0:
            raise SystemExit(code)
    except RoiError as error:
        console.user_error(error)
        raise SystemExit(error.exit_code) from None
    except RunFailed as error:
        console.run_failed(str(error))
        raise SystemExit(error.exit_code) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except typer.Abort:
        raise SystemExit(ExitCode.FAILED_TO_RUN) from None
    except typer.TyperException as error:  # usage errors (typer vendors click's exceptions)
        show = getattr(error, "show", None)
        if show is None:
            raise
        show()
        raise SystemExit(ExitCode.BAD_INPUT) from None
