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

from roi.errors import RoiError
from roi.metrics import CellSummary, RunSummary
from roi.runner import Progress as RunProgress
from roi.stats import Rate

out = Console()
err = Console(stderr=True)


def status(message: str) -> None:
    err.print(Text(message, style="cyan"))


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
    for name in ("model", "mode", "calls", "failed", "items", "compute s", "items/s", "cost"):
        table.add_column(name)
    for m in summary.modes:
        rate = "n/a" if m.items_per_s is None else f"{m.items_per_s:.2f}"
        cost = "unknown" if m.cost_usd is None else f"${m.cost_usd:.4f}"
        table.add_row(
            Text(m.model),
            m.mode,
            str(m.calls),
            str(m.failed_calls),
            str(m.items),
            f"{m.compute_s:.1f}",
            rate,
            cost,
        )
    return table


def show_summary(summary: RunSummary, run_dir: str) -> None:
    out.print(summary_table(summary))
    out.print(modes_table(summary))
    out.print(Text(f"Run {summary.run_id} stored; files in {run_dir}"))
