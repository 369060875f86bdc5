"""Everything roi prints to a terminal goes through here (Rich)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from roi.baseline import BaselineCheck
from roi.compare import Comparison
from roi.decision import Decision
from roi.errors import RoiError
from roi.history import HistoryRow
from roi.metrics import CellSummary, RunSummary
from roi.planning import Plan
from roi.probe import Mean, MixtureFigures
from roi.purge import PurgeResult
from roi.redaction import redact
from roi.report.wording import decision_line
from roi.runner import Progress as RunProgress
from roi.stats import Rate

out = Console()
err = Console(stderr=True)


def status(message: str) -> None:
    err.print(Text(redact(message), style="cyan"))


def run_failed(message: str) -> None:
    err.print(Text.assemble(("Run failed: ", "bold red"), redact(message)), soft_wrap=True)


def user_error(error: RoiError) -> None:
    err.print(Text("Error:", style="bold red"))
    for problem in error.problems:
        err.print(Text("  " + problem.render()))


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
            label = p.model + (f" ({p.failed} failed)" if p.failed else "")
            bar.update(task, total=p.total, completed=p.done, description=label or "calls")

        yield bar, update


def pct(rate: Rate) -> str:
    if rate.value is None or rate.low is None or rate.high is None:
        return "n/a (n=0)"
    return f"{rate.value:.0%} [{rate.low:.0%}, {rate.high:.0%}] n={rate.n}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def _delta(cell: CellSummary) -> str:
    d = cell.vs_single
    if d is None or d.diff is None or d.low is None or d.high is None:
        return "" if cell.mode == "single" else "n/a"
    return f"{d.diff:+.0%} [{d.low:+.0%}, {d.high:+.0%}] n={d.n} p={d.mcnemar_p:.2g}"


def summary_table(summary: RunSummary) -> Table:
    table = Table(title=f"{summary.pilot} · run {summary.run_id}", show_lines=False)
    for name in (
        "model",
        "task",
        "mode",
        "accuracy 95% CI",
        "mixed − single (paired)",
        "unparsed",
        "swaps",
        "p50 s/item",
        "p95 s/item",
        "tokens/item in+out",
        "cost/item",
    ):
        table.add_column(name, overflow="fold")
    for c in summary.cells:
        tokens = (
            "n/a"
            if c.prompt_tokens_per_item is None or c.output_tokens_per_item is None
            else f"{c.prompt_tokens_per_item:.0f}+{c.output_tokens_per_item:.1f}"
        )
        table.add_row(
            Text(c.model),
            Text(c.task),
            c.mode,
            pct(c.accuracy),
            _delta(c),
            str(c.unparseable.k),
            str(c.swaps.k),
            _seconds(c.latency_p50_s),
            _seconds(c.latency_p95_s),
            tokens,
            _money(c.cost_per_item_usd),
        )
    return table


def modes_table(summary: RunSummary) -> Table:
    table = Table(title="per model and mode")
    for name in ("model", "mode", "calls", "failed", "retries", "items", "compute s", "items/s", "cost"):
        table.add_column(name)
    for m in summary.modes:
        rate = "n/a" if m.items_per_s is None else f"{m.items_per_s:.2f}"
        cost = "unknown" if m.cost_usd is None else f"${m.cost_usd:.4f}"
        table.add_row(
            Text(m.model),
            m.mode,
            str(m.calls),
            str(m.failed_calls),
            str(m.retries),
            str(m.items),
            f"{m.compute_s:.1f}",
            rate,
            cost,
        )
    return table


def plan_table(plan: Plan) -> Table:
    limit = "" if plan.item_limit is None else f" · first {plan.item_limit} items per task"
    table = Table(title=f"plan · {plan.pilot}{limit} · no model called")
    for name in ("model", "mode", "calls", "items", "tokens in", "out (max)", "USD (max)", "time"):
        table.add_column(name, overflow="fold")
    for r in plan.rows:
        cost = "unknown" if r.cost_usd is None else f"{r.cost_usd:.4f} ({r.max_cost_usd or 0:.4f})"
        table.add_row(
            Text(r.model),
            r.mode,
            str(r.calls),
            str(r.items),
            f"{r.prompt_tokens:,}",
            f"{r.output_tokens:,} ({r.max_output_tokens:,})",
            cost,
            "unknown" if r.time_s is None else f"{r.time_s:.0f} s",
        )
    return table


def show_plan(plan: Plan) -> None:
    out.print(plan_table(plan))
    default = "tokens counted by {r.counted_by}; time {r.time_basis}"
    notes = [f"{r.model} {r.mode}: " + (r.note or default.format(r=r)) for r in plan.rows]
    for note in notes:
        out.print(Text(note), soft_wrap=True)
    out.print(
        Text("Output tokens assume every answer is the expected one; (max) uses each call's whole answer budget."),
        soft_wrap=True,
    )


def show_stop(note: str, run_id: str) -> None:
    hint = " and a higher --max-cost" if "--max-cost" in note else ""
    out.print(Text(f"Run {run_id} {note}. Resume with --resume {run_id}{hint}."), soft_wrap=True)


def show_incomplete(reasons: list[str]) -> None:
    """Why the run's evidence is incomplete (exit 4)."""
    out.print(Text("Incomplete evidence (exit 4):", style="bold red"), soft_wrap=True)
    for reason in reasons:
        out.print(Text(f"  {reason}", style="red"), soft_wrap=True)


def show_decision(decision: Decision, report_html: str | None = None) -> None:
    """The decision in one line (English), and where the full report is."""
    out.print(Text(decision_line(decision), style="bold"), soft_wrap=True)
    if report_html:
        out.print(Text(f"Report: {report_html}"), soft_wrap=True)


def show_summary(summary: RunSummary, run_dir: str) -> None:
    out.print(summary_table(summary))
    out.print(modes_table(summary))
    out.print(Text(f"Run {summary.run_id} stored; files in {run_dir}"))


# ---------------------------------------------------------------- issue 5: the superposition probe


def _mean(m: Mean) -> str:
    if m.value is None or m.low is None or m.high is None:
        return "n/a (n=0)"
    return f"{m.value:.3f} [{m.low:.3f}, {m.high:.3f}]"


def probe_table(figures: list[MixtureFigures]) -> Table:
    """One row per mixture: P(answer) per task (share in brackets), KL both ways, top-K, leftover."""
    table = Table(title="superposition probe: mean P(task's answer) over prompts, 95% intervals")
    columns = ("model", "mixture", "n", "P(answer) per task [share]", "KL(pi||p)", "KL renorm.", "all in top-K")
    for column in (*columns, "leftover"):
        table.add_column(column, overflow="fold")
    for f in figures:
        tasks = "\n".join(f"{t.task} [{t.share:.2f}]: {_mean(t.probability)}" for t in f.tasks)
        table.add_row(
            Text(_probe_model(f)), Text(f.mixture), str(f.prompts), Text(tasks), _mean(f.kl), _mean(f.kl_renormalised),
            f"K={f.beam_width}: {pct(f.all_in_beam)}", _mean(f.leftover),
        )  # fmt: skip
    return table


def _probe_model(f: MixtureFigures) -> str:
    """The model's name, marked when its figures are top-logprob estimates (docs/probe.md)."""
    if not f.estimate:
        return f.model
    bounds = f", {f.upper_bounds} upper bounds" if f.upper_bounds else ""
    return f"{f.model}\n(estimate: top-logprob beam{bounds})"


def show_probe(figures: list[MixtureFigures]) -> None:
    out.print(probe_table(figures))
    out.print(
        Text("KL(pi||p) uses p as measured (not renormalised, as the paper does); 'renorm.' rescales p over the "
             "mixture's tasks. Leftover: probability on any other continuation."),
        soft_wrap=True,
    )  # fmt: skip


# ---------------------------------------------------------------- issue 7: history, compare, baseline


def show_history(rows: list[HistoryRow]) -> None:
    table = Table(title="runs, newest first (★ accepted baseline)")
    columns = ("run", "pilot", "started", "status", "limit", "models", "decision", "accuracy per mode", "cost", "calls")
    for name in columns:
        table.add_column(name, overflow="fold")
    for r in rows:
        d = r.decision
        decision = "—" if d is None else f"{d['model']}: {d['stage']} {d['stage_name']} ({d['outcome']})"
        accuracy = "\n".join(f"{mode} {pct(rate)}" for mode, rate in r.accuracy.items()) or "—"
        cached = f" ({r.cached_calls} cached)" if r.cached_calls else ""
        table.add_row(
            Text(("★ " if r.baseline else "") + r.run_id),
            Text(r.pilot),
            r.started_at[:16].replace("T", " "),
            r.status,
            "all" if r.item_limit is None else str(r.item_limit),
            Text(", ".join(r.models)),
            Text(decision),
            accuracy,
            _money(r.cost_usd),
            f"{r.calls}{cached}",
        )
    out.print(table)


def _change(a: float | None, b: float | None, fmt: Callable[[float | None], str]) -> str:
    return f"{fmt(a)} → {fmt(b)}"


def show_comparison(comparison: Comparison) -> None:
    a, b = comparison.run_a, comparison.run_b
    table = Table(title=f"{comparison.pilot_b}: run B {b} against run A {a} (B − A, paired on shared items)")
    columns = ("model", "task", "mode", "pairs", "accuracy A → B", "B − A [95% CI]", "McNemar p")
    for name in (*columns, "p50 s A → B", "cost/item A → B"):
        table.add_column(name, overflow="fold")
    for c in comparison.cells:
        d = c.diff
        known = d.diff is not None and d.low is not None and d.high is not None
        diff = f"{d.diff:+.0%} [{d.low:+.0%}, {d.high:+.0%}]" if known else "n/a"
        table.add_row(
            Text(c.model),
            Text(c.task),
            c.mode,
            f"{c.shared}" + (f" (+{c.only_a} A only, +{c.only_b} B only)" if c.only_a or c.only_b else ""),
            f"{pct(c.accuracy_a)} → {pct(c.accuracy_b)}",
            Text(diff, style="bold red" if c.worse else ""),
            "n/a" if d.mcnemar_p is None else f"{d.mcnemar_p:.3g}",
            _change(c.latency_p50_a_s, c.latency_p50_b_s, _seconds),
            _change(c.cost_per_item_a_usd, c.cost_per_item_b_usd, _money),
        )
    out.print(table)
    for note in comparison.missing:
        out.print(Text(f"not compared: {note}"), soft_wrap=True)


def show_check(check: BaselineCheck) -> None:
    """What regressed against the baseline (or the previous run), after a run's summary."""
    if check.reference is None:
        out.print(Text("No baseline or earlier complete run to compare with (roi accept RUN_ID sets a baseline)."))
        return
    against = "accepted baseline" if check.reference_is_baseline else "previous complete run (no baseline accepted)"
    if not check.regressions:
        out.print(Text(f"Against the {against} {check.reference}: nothing regressed."), soft_wrap=True)
        return
    out.print(Text(f"Against the {against} {check.reference}:", style="bold"), soft_wrap=True)
    for r in check.regressions:
        style = "red" if r.kind != "accuracy" else ""
        out.print(Text(f"  regressed [{r.kind}] {r.describe()}", style=style), soft_wrap=True)


def quiet_line(line: str) -> None:
    out.print(Text(line), soft_wrap=True)


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
