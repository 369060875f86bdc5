"""Everything roi prints to a terminal goes through here (Rich).

Tables fit 80 columns: names and run ids never wrap (`no_wrap`), figures are short, an interval sits
after its value with a space, so a narrow terminal stacks it under the value instead of breaking it
mid-word (`fit` narrows such columns, never below their longest word), and long headers of unwrapped
columns carry their own line breaks. Tables of several models that still do not fit are printed one per
model, the model in the title. `wide=True` (the CLI's `--wide`) adds the columns a wide terminal or a
file has room for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich import box
from rich.console import Console, ConsoleOptions
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from roi.baseline import BaselineCheck
from roi.briefing import Briefing
from roi.compare import Comparison
from roi.decision import STAGES, Decision
from roi.errors import RoiError, render_together
from roi.fingerprint import SettingsDiff
from roi.formats import p_value, percent, points, usd, usd_per_1k
from roi.history import HistoryRow
from roi.metrics import CellSummary, ModeSummary, RunSummary
from roi.planning import Plan
from roi.probe.figures import Mean, MixtureFigures
from roi.purge import PurgeResult
from roi.redaction import redact
from roi.report.brief import brief_page, headline_sentences
from roi.report.wording import decision_line
from roi.runner import Progress as RunProgress
from roi.stats import PairedDiff, Rate

out = Console()
err = Console(stderr=True)

NAME, NUMBER, FIGURE = "name", "number", "figure"  # column kinds: never wrapped, right-aligned, stackable


def status(message: str) -> None:
    err.print(Text(redact(message), style="cyan"))


def run_failed(message: str) -> None:
    err.print(Text.assemble(("Run failed: ", "bold red"), redact(message)), soft_wrap=True)


def interrupted() -> None:
    err.print("Interrupted: finished calls are stored; the same roi run command resumes the run.")


def warn(message: str) -> None:
    err.print(Text.assemble(("Warning: ", "bold yellow"), message))


def user_error(error: RoiError) -> None:
    err.print(Text("Error:", style="bold red"))
    for line in render_together(error.problems):
        err.print(Text("  " + line))


def interactive() -> bool:
    """Questions only when a person is at a terminal (never in scripts or cron)."""
    return err.is_terminal and sys.stdin.isatty()


def ask(question: str, default: str) -> str:
    from rich.prompt import Prompt

    return Prompt.ask(question, default=default, console=err) or default


def raw(text: str) -> None:
    """Text exactly as given (JSON, for redirecting to a file): no wrapping, no markup."""
    sys.stdout.write(text)


def note(message: str) -> None:
    """A sentence, wrapped at spaces to the terminal."""
    out.print(Text(message))


def path_line(message: str) -> None:
    """A line ending in a path or command, never wrapped (so it can be copied whole)."""
    out.print(Text(message), soft_wrap=True)


@contextmanager
def run_progress() -> Iterator[tuple[Progress, Callable[[RunProgress], None]]]:
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("calls"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    with bar:
        task = bar.add_task("starting", total=None)

        def update(p: RunProgress) -> None:
            label = p.model + (f" ({p.failed} failed)" if p.failed else "") + (f" · {p.note}" if p.note else "")
            # The description is Rich markup; a batch job's state comes from a remote service.
            bar.update(task, total=p.total, completed=p.done + p.in_batch, description=escape(label) or "calls")

        yield bar, update


# ---------------------------------------------------------------- cells


def table(title: str, columns: Sequence[tuple[str, str]]) -> Table:
    """A borderless table whose columns behave by kind (see NAME, NUMBER, FIGURE)."""
    grid = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False
    )
    for header, kind in columns:
        grid.add_column(header, no_wrap=kind != FIGURE, justify="right" if kind == NUMBER else "left")
    return grid


def show(grid: Table, wide: bool = False) -> None:
    """A table at the terminal's width; with `wide`, at its own full width, however wide the terminal
    (cells whole, for a wide window or a file), never squeezed into ellipses."""
    if not wide:
        fit(grid, out.width)
        out.print(grid)
        return
    natural = Measurement.get(out, out.options.update_width(1000), grid).maximum
    # Console.print clamps a width to the terminal's: a console of the table's own width prints it whole.
    width = max(natural, out.width)
    full = Console(file=out.file, width=width, force_terminal=out.is_terminal, no_color=out.no_color, highlight=False)
    full.print(grid, crop=False)


def fit(grid: Table, width: int) -> bool:
    """Narrow the wrapping (FIGURE) columns, widest first and never below their longest word, until the
    table fits `width`; False when even that is too wide (Rich would then cut cells to `…`). Rich's own
    shrinking ignores the longest word, so the widths are set here."""
    options = out.options.update_width(10_000)
    excess = Measurement.get(out, options, grid).maximum - width
    if excess <= 0:
        return True
    wrapping = [(column, *_word_and_line(column, options)) for column in grid.columns if not column.no_wrap]
    if excess > sum(line - word for _, word, line in wrapping):
        return False

    def cut(level: int) -> int:
        return sum(line - max(word, min(line, level)) for _, word, line in wrapping)

    level = max(line for _, _, line in wrapping)
    while cut(level) < excess:
        level -= 1
    for column, word, line in wrapping:
        column.max_width = max(word, min(line, level))
    return True


def _word_and_line(column: Column, options: ConsoleOptions) -> tuple[int, int]:
    """The widths of a column's longest word and longest line, header included."""
    sizes = [Measurement.get(out, options, cell) for cell in [column.header, *column.cells]]
    return max(m.minimum for m in sizes), max(m.maximum for m in sizes)


def show_by_model(builds: Sequence[Callable[[str | None], Table]], models: Sequence[str], wide: bool) -> None:
    """Tables of all models (`build(None)`) when they fit the terminal, or with `wide`; else each model's
    tables in turn (`build(model)`), its name in their titles."""
    whole = [build(None) for build in builds]
    if wide or len(models) < 2 or all(fit(grid, out.width) for grid in whole):
        for grid in whole:
            show(grid, wide)
        return
    for model in models:
        for build in builds:
            show(build(model), wide)


def interval(low: float | None, high: float | None, fmt: Callable[[float | None], str]) -> str:
    """`[63,90]`: no space inside, so it never splits across lines."""
    return f"[{fmt(low).rstrip('%')},{fmt(high).rstrip('%')}]"


def rate(r: Rate, with_n: bool = False) -> str:
    """`79% [63,90]` (and ` n=34`): the value, then its 95% Wilson interval."""
    if r.value is None:
        return "n/a (n=0)"
    shown = f"{percent(r.value)} {interval(r.low, r.high, percent)}"
    return f"{shown} n={r.n}" if with_n else shown


def change(d: PairedDiff | None) -> str:
    """`−38 [−56,−24]`: a paired change (b − a) in percentage points with its 95% interval."""
    if d is None or d.diff is None:
        return "n/a"
    return f"{points(d.diff)} {interval(d.low, d.high, points)}"


def drop(d: PairedDiff | None) -> str:
    """`+38 [+24,+56]`: the accuracy drop, single − mixed, in points (the gates' convention: positive
    when mixed is worse), from a mixed − single paired change."""
    if d is None or d.diff is None:
        return "n/a"
    low, high = (None if x is None else -x for x in (d.high, d.low))
    return f"{points(-d.diff)} {interval(low, high, points)}"


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def in_order(names: Sequence[str], order: Sequence[str]) -> list[str]:
    """`names` in `order` (the pilot's), unknown ones after, alphabetically."""
    known = [n for n in order if n in names]
    return known + sorted(set(names) - set(known))


def _rank(order: Sequence[str]) -> Callable[[str], tuple[int, str]]:
    place = {name: i for i, name in enumerate(order)}
    return lambda name: (place.get(name, len(place)), name)


# ---------------------------------------------------------------- roi run


def summary_table(
    summary: RunSummary,
    tasks: Sequence[str] = (),
    models: Sequence[str] = (),
    wide: bool = False,
    model: str | None = None,
) -> Table:
    """Per model x task x mode (only `model`'s rows when given); tasks and models in pilot order. One
    model: its name is in the title."""
    cells = [c for c in summary.cells if model is None or c.model == model]
    several = len({c.model for c in cells}) > 1
    title = f"{summary.pilot} · run {summary.run_id}" + ("" if several or not cells else f" · {cells[0].model}")
    columns = [("model", NAME)] if several else []
    columns += [("task", NAME), ("mode", NAME), ("n", NUMBER), ("accuracy [95% CI]", FIGURE)]
    columns += [("accuracy drop\npoints [95% CI]", FIGURE)] + ([("McNemar\np", NUMBER)] if wide else [])
    columns += [("un-\nparsed", NUMBER)] + ([("swaps", NUMBER)] if wide else []) + [("p95 s", NUMBER)]
    columns += [("p50 s", NUMBER), ("tokens/item\nin+out", NUMBER)] if wide else []
    columns += [("$ per 1k\nitems", NUMBER)]
    grid = table(title, columns)
    task_rank, model_rank = _rank(tasks), _rank(models)
    for c in sorted(cells, key=lambda c: (model_rank(c.model), task_rank(c.task), c.mode != "single")):
        grid.add_row(*_summary_row(c, several, wide))
    return grid


def _summary_row(c: CellSummary, several: bool, wide: bool) -> list[str]:
    row = [c.model] if several else []
    mixed = c.mode != "single"
    row += [c.task, c.mode, str(c.accuracy.n), rate(c.accuracy), drop(c.vs_single) if mixed else ""]
    if wide:
        row.append(p_value(c.vs_single.mcnemar_p) if mixed and c.vs_single else "")
    row += [str(c.unparseable.k)] + ([str(c.swaps.k)] if wide else []) + [seconds(c.latency_p95_s)]
    if wide:
        tokens = (
            "n/a"
            if c.prompt_tokens_per_item is None or c.output_tokens_per_item is None
            else f"{c.prompt_tokens_per_item:.0f}+{c.output_tokens_per_item:.1f}"
        )
        row += [seconds(c.latency_p50_s), tokens]
    row.append(usd_per_1k(c.cost_per_item_usd))
    return row


def modes_table(summary: RunSummary, models: Sequence[str] = (), wide: bool = False, model: str | None = None) -> Table:
    """Per model and mode, over all tasks (only `model`'s rows when given). One model: its name is in
    the title."""
    modes = [m for m in summary.modes if model is None or m.model == model]
    several = len({m.model for m in modes}) > 1
    retried = wide or any(m.retries for m in modes)
    columns = [("model", NAME)] if several else []
    columns += [("mode", NAME), ("calls", NUMBER), ("failed", NUMBER)]
    columns += [("retries", NUMBER)] if retried else []
    columns += [("items", NUMBER), ("items/s", NUMBER), ("p95 s", NUMBER)]
    columns += [("compute s", NUMBER)] if wide else []
    columns += [("cost", NUMBER)]
    scope = "per model and mode" if several or not modes else f"{modes[0].model} · per mode"
    grid = table(f"{scope}, all tasks", columns)
    rank = _rank(models)
    for m in sorted(modes, key=lambda m: (rank(m.model), m.mode != "single")):
        grid.add_row(*_mode_row(m, several, retried, wide))
    return grid


def _mode_row(m: ModeSummary, several: bool, retried: bool, wide: bool) -> list[str]:
    row = [m.model] if several else []
    row += [m.mode, str(m.calls), _failed(m)] + ([str(m.retries)] if retried else [])
    row += [str(m.items), "n/a" if m.items_per_s is None else f"{m.items_per_s:.2f}", seconds(m.latency_p95_s)]
    row += [f"{m.compute_s:.1f}"] if wide else []
    return [*row, usd(m.cost_usd)]


def _failed(m: ModeSummary) -> str:
    """Failed calls and the upper end of their rate's 95% Wilson interval (what the failed-calls gate judges)."""
    return str(m.failed_calls) if m.failed.high is None else f"{m.failed_calls} (≤{m.failed.high:.0%})"


def latency_notes(summary: RunSummary, wide: bool = False) -> list[str]:
    """Why a latency is n/a, which level each p95 is measured at, what the failed column holds, and
    where the swaps are when the table leaves them out."""
    notes = ["accuracy drop: single − mixed on the same items, in points; positive when mixed is worse, "
             "as the accuracy gate judges it.",
             "p95 s: per item; over a task's items in the table by task, over all of a model's items in the "
             "table by mode, which is the figure the latency gate judges.",
             "failed (≤x%): failed calls, and the upper end of the 95% interval of their rate, which the "
             "failed-calls gate judges; a failed call's items count as wrong."]  # fmt: skip
    unmeasured = [(c.model, c.mode) for c in summary.cells if c.latency_p95_s is None and c.accuracy.n]
    failed = {(m.model, m.mode) for m in summary.modes if m.calls and m.failed_calls == m.calls}
    if any(row in failed for row in unmeasured):
        notes.append("n/a latency: every call of that row failed, so none was timed (see the failed column).")
    if any(row not in failed for row in unmeasured):
        notes.append(
            "n/a latency: every call of that row was answered from the response cache, and latency counts "
            "live calls only (roi run --fresh measures again)."
        )
    swapped = sum(c.swaps.k for c in summary.cells)
    if swapped and not wide:
        answers = "1 answer was" if swapped == 1 else f"{swapped} answers were"
        notes.append(f"swaps: {answers} another query's expected answer from the same call "
                     "(roi run --wide shows them per row).")  # fmt: skip
    return notes


def show_summary(
    summary: RunSummary, run_dir: str, tasks: Sequence[str] = (), models: Sequence[str] = (), wide: bool = False
) -> None:
    models = in_order([c.model for c in summary.cells], models)
    builds = (
        lambda model: summary_table(summary, tasks, models, wide, model),
        lambda model: modes_table(summary, models, wide, model),
    )
    show_by_model(builds, models, wide)
    for line in latency_notes(summary, wide):
        note(line)
    path_line(f"Run {summary.run_id} stored; files in {run_dir}")


def show_stop(message: str, run_id: str) -> None:
    hint = " and a higher --max-cost" if "--max-cost" in message else ""
    path_line(f"Run {run_id} {message}. Resume with --resume {run_id}{hint}.")


def show_incomplete(reasons: list[str]) -> None:
    """Why the run's evidence is incomplete (exit 4)."""
    out.print(Text("Incomplete evidence (exit 4):", style="bold red"))
    for reason in reasons:
        out.print(Text(f"  {reason}", style="red"))


def show_decision(decision: Decision, report_html: str | None = None, briefing: Briefing | None = None) -> None:
    """The decision (English): its headline, why and what next as the report's briefing says them, and
    where the full report is. Without a briefing, the decision in one line."""
    page = brief_page(briefing, None, "en")
    if page is None:
        out.print(Text(decision_line(decision), style="bold"), soft_wrap=True)
    else:
        first, *more = headline_sentences(decision.chosen, "en")
        out.print(Text(f"Stage {decision.stage} ({STAGES[decision.stage]}): {first}", style="bold"))
        for sentence in more:
            note(sentence)
        for title, lines in ((page["why_title"], page["why"]), (page["next_title"], page["next"])):
            if lines:
                note(f"{title}:")
                out.print(bullets(lines))
    if report_html:
        path_line(f"Report: {report_html}")


def bullets(lines: Sequence[str]) -> Table:
    """Lines as an indented list whose wrapped lines hang under their first word."""
    grid = Table.grid(padding=(0, 1, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for line in lines:
        grid.add_row("  -", line)
    return grid


def quiet_line(line: str) -> None:
    path_line(line)


# ---------------------------------------------------------------- roi plan


def plan_table(plan: Plan) -> Table:
    limit = "" if plan.item_limit is None else f" · first {plan.item_limit} items per task"
    columns = [("model", NAME), ("mode", NAME), ("calls", NUMBER), ("items", NUMBER), ("tokens\nin", NUMBER)]
    columns += [("tokens out\n(max)", FIGURE), ("USD\n(max)", FIGURE), ("time", NUMBER)]
    grid = table(f"plan · {plan.pilot}{limit} · no model called", columns)
    for r in plan.rows:
        cost = "unknown" if r.cost_usd is None else f"{usd(r.cost_usd)} ({usd(r.max_cost_usd)})"
        time = "unknown" if r.time_s is None else f"{r.time_s:.0f} s"
        if r.at_most:  # a ceiling: the calls may not be made at all
            cost = "unknown" if r.max_cost_usd is None else f"≤ {usd(r.max_cost_usd)}"
            time = time if r.time_s is None else f"≤ {time}"
        tokens_out = f"{r.output_tokens:,} ({r.max_output_tokens:,})"
        grid.add_row(r.model, r.mode, str(r.calls), str(r.items), f"{r.prompt_tokens:,}", tokens_out, cost, time)
    return grid


def show_plan(plan: Plan) -> None:
    show(plan_table(plan))
    for number, group in enumerate(plan.mixed_groups, 1):
        note(f"mixed group {number} (one call answers one item of each): {', '.join(group)}")
    default = "tokens counted by {r.counted_by}; time {r.time_basis}"
    for r in plan.rows:
        note(f"{r.model} {r.mode}: " + (r.note or default.format(r=r)))
    note("Output tokens assume every answer is the expected one; (max) uses each call's whole answer budget.")


# ---------------------------------------------------------------- the superposition probe


def _mean(m: Mean) -> str:
    if m.value is None or m.low is None or m.high is None:
        return "n/a (n=0)"
    return f"{m.value:.3f} [{m.low:.3f},{m.high:.3f}]"


def probe_table(figures: list[MixtureFigures]) -> Table:
    """One row per mixture: P(answer) per task (share in brackets), KL both ways, top-K, leftover."""
    columns = [("model", NAME), ("mixture", FIGURE), ("n", NUMBER), ("P(answer) per task [share]", FIGURE)]
    columns += [("KL(pi||p)", FIGURE), ("KL renorm.", FIGURE), ("all in top-K", FIGURE), ("leftover", FIGURE)]
    grid = table("superposition probe: mean P(task's answer) over prompts, 95% intervals", columns)
    for f in figures:
        tasks = "\n".join(f"{t.task} [{t.share:.2f}]: {_mean(t.probability)}" for t in f.tasks)
        grid.add_row(
            _probe_model(f), f.mixture, str(f.prompts), tasks, _mean(f.kl), _mean(f.kl_renormalised),
            f"K={f.beam_width}: {rate(f.all_in_beam, with_n=True)}", _mean(f.leftover),
        )  # fmt: skip
    return grid


def _probe_model(f: MixtureFigures) -> str:
    """The model's name, marked when its figures are top-logprob estimates (docs/probe.md)."""
    if not f.estimate:
        return f.model
    bounds = f", {f.upper_bounds} upper bounds" if f.upper_bounds else ""
    return f"{f.model}\n(estimate: top-logprob beam{bounds})"


def show_probe(figures: list[MixtureFigures]) -> None:
    show(probe_table(figures))
    note("KL(pi||p) uses p as measured (not renormalised, as the paper does); 'renorm.' rescales p over the "
         "mixture's tasks. Leftover: probability on any other continuation.")  # fmt: skip


# ---------------------------------------------------------------- history, compare, baseline


def history_table(rows: list[HistoryRow], wide: bool = False) -> Table:
    pilots = {r.pilot for r in rows}
    modes = in_order([m for r in rows for m in r.accuracy], ["single", "mixed"])
    title = "runs, newest first (★ accepted baseline), accuracy per mode [95% CI]"
    title = title if len(pilots) != 1 else f"{next(iter(pilots))} · {title}"
    columns = [("run", NAME)] + ([("pilot", NAME)] if wide or len(pilots) > 1 else [])
    columns += [("started", NAME), ("limit", NUMBER), ("models", FIGURE), ("status", FIGURE)] if wide else []
    columns += [("decision", FIGURE)] + [(m, FIGURE) for m in modes] + [("spent", NUMBER), ("calls", FIGURE)]
    grid = table(title, columns)
    for r in rows:
        grid.add_row(*_history_row(r, modes, wide or len(pilots) > 1, wide))
    return grid


def _history_row(r: HistoryRow, modes: list[str], pilot: bool, wide: bool) -> list[str]:
    row = [("★ " if r.baseline else "") + r.run_id] + ([r.pilot] if pilot else [])
    status = r.status.replace("_", " ")
    if wide:
        limit = "all" if r.item_limit is None else str(r.item_limit)
        row += [r.started_at[:16].replace("T", " "), limit, ", ".join(r.models), status]
    row.append(_decision_cell(r, status, wide))
    row += [rate(r.accuracy[m], with_n=True) if m in r.accuracy else "—" for m in modes]
    return [*row, usd(r.cost_usd), f"{r.calls}" + (f" ({r.reused_calls} reused)" if r.reused_calls else "")]


def _decision_cell(r: HistoryRow, status: str, wide: bool) -> str:
    """The decision in brief; the run's status instead (or first) unless the run is simply complete."""
    d = r.decision
    shown = "" if d is None else f"{d['stage']} {d['stage_name']} ({d['outcome']})"
    if d is not None and (wide or len(r.models) > 1):
        shown = f"{d['model']}: {shown}"
    if wide or status == "complete":
        return shown or "—"
    return f"{status}: {shown}" if shown else status


def show_history(rows: list[HistoryRow], wide: bool = False) -> None:
    """One table; runs of several pilots that do not fit the terminal together, a table per pilot (its
    name in the title instead of a column), pilots in the order of their newest run."""
    pilots = list(dict.fromkeys(r.pilot for r in rows))
    grid = history_table(rows, wide)
    if wide or len(pilots) < 2 or fit(grid, out.width):
        show(grid, wide)
    else:
        for pilot in pilots:
            show(history_table([r for r in rows if r.pilot == pilot]))
    if any(r.reused_calls for r in rows):
        note("spent: what the run's own calls cost; calls answered from the response cache cost nothing again.")


def comparison_table(comparison: Comparison, wide: bool = False, model: str | None = None) -> Table:
    """Per model x task x mode (only `model`'s rows when given). One model: its name is in the title."""
    a, b = comparison.run_a, comparison.run_b
    cells = [c for c in comparison.cells if model is None or c.model == model]
    several = len({c.model for c in cells}) > 1
    title = f"{comparison.pilot_b}: B {b} against A {a}" + ("" if several or not cells else f" · {cells[0].model}")
    columns = [("model", NAME)] if several else []
    columns += [("task", NAME), ("mode", NAME), ("pairs", NUMBER), ("accuracy A", FIGURE), ("accuracy B", FIGURE)]
    columns += [("B − A, points\n[95% CI]", FIGURE)]
    columns += [("McNemar\np", NUMBER), ("p50 s\nA→B", NUMBER), ("$ per 1k\nitems A→B", NUMBER)] if wide else []
    grid = table(title, columns)
    for c in cells:
        pairs = f"{c.shared}" + (
            f" (+{c.only_a} A only, +{c.only_b} B only)" if wide and (c.only_a or c.only_b) else ""
        )
        row: list[str | Text] = [c.model] if several else []
        row += [c.task, c.mode, pairs, rate(c.accuracy_a), rate(c.accuracy_b)]
        row.append(Text(change(c.diff), style="bold red" if c.worse else ""))
        if wide:
            row += [p_value(c.diff.mcnemar_p), f"{seconds(c.latency_p50_a_s)}→{seconds(c.latency_p50_b_s)}",
                    f"{usd_per_1k(c.cost_per_item_a_usd)}→{usd_per_1k(c.cost_per_item_b_usd)}"]  # fmt: skip
        grid.add_row(*row)
    return grid


def show_comparison(comparison: Comparison, wide: bool = False) -> None:
    models = list(dict.fromkeys(c.model for c in comparison.cells))  # the cells are in pilot order
    show_by_model([lambda model: comparison_table(comparison, wide, model)], models, wide)
    if not wide:
        note("B − A: negative means B is worse. --wide adds McNemar p, latency, cost and the items one run lacks.")
    for missing in comparison.missing:
        note(f"not compared: {missing}")
    if comparison.settings is not None:
        show_settings(comparison.settings, "A", "B")


def show_settings(diff: SettingsDiff, before: str, after: str) -> None:
    """Whether two runs asked with the same pilot settings: a change explains a change in results."""
    if not diff.known:
        note(f"The pilot settings of {before} were not recorded (an older run): they may differ.")
    elif diff.changes:
        out.print(Text(f"The pilot's settings differ between {before} and {after}:", style="bold yellow"))
        for line in diff.changes:
            note(f"  {line}")


def show_check(check: BaselineCheck, settings: SettingsDiff | None = None) -> None:
    """What regressed against the baseline (or the previous run), after a run's summary."""
    if check.reference is None:
        note("No baseline or earlier complete run to compare with (roi accept RUN_ID sets a baseline).")
        return
    against = "accepted baseline" if check.reference_is_baseline else "previous complete run (no baseline accepted)"
    if not check.regressions:
        note(f"Against the {against} {check.reference}: nothing regressed.")
    else:
        out.print(Text(f"Against the {against} {check.reference}:", style="bold"), soft_wrap=True)
        for r in check.regressions:
            style = "red" if r.kind != "accuracy" else ""
            out.print(Text(f"  regressed [{r.kind}] {r.describe()}", style=style), soft_wrap=True)
    if settings is not None:
        show_settings(settings, check.reference, "this run")


def show_purge(result: PurgeResult) -> None:
    """What `roi purge` removed (or, in a dry run, would remove)."""
    verb = "Would remove" if result.dry_run else "Removed"
    pilots = sorted({r.pilot for r in result.runs})
    runs = f"{verb} {len(result.runs)} run(s)" + (f" of {', '.join(pilots)}" if pilots else "")
    if not result.dry_run:
        r = result.removed
        runs += f": {r.calls:,} calls, {r.items:,} items, {r.probe_rows:,} probe rows, {result.folders} run folders"
    out.print(Text(runs + "."), soft_wrap=True)
    if result.dry_run:
        for run in result.runs:
            out.print(Text(f"  {run.run_id}  {run.pilot}  started {run.started_at}"), no_wrap=True, overflow="ignore")
    if result.kept_baselines:
        kept = ", ".join(result.kept_baselines)
        out.print(Text(f"Kept the accepted baseline(s) {kept} (--include-baselines removes them)."), soft_wrap=True)
    if result.cache_sources_forgotten:
        out.print(Text(f"{result.cache_sources_forgotten:,} cached answers will not be reused."), soft_wrap=True)
    if not result.dry_run:
        size = f"{result.bytes_before / 1e6:.1f} MB -> {result.bytes_after / 1e6:.1f} MB"
        out.print(Text(f"Store compacted: {size}."), soft_wrap=True)
