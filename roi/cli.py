"""The `roi` command: a thin shell over the library. Exit codes: 0 ok, 1 failed to run, 2 bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from roi import console
from roi.errors import RoiError, RunFailed
from roi.pilot import load_pilot
from roi.runner import RunOptions, run_pilot

app = typer.Typer(
    help="Evidence for mixed (task-superposition) prompting. Exit codes: 0 ok; 1 failed to run; 2 bad input or usage.",
    pretty_exceptions_show_locals=False,  # a traceback with locals could print an API key
    no_args_is_help=True,
    add_completion=False,
)

PilotArg = Annotated[Path, typer.Argument(help="The pilot YAML file.")]


@app.command()
def validate(pilot: PilotArg) -> None:
    """Check a pilot file and its data files without running any model."""
    loaded = load_pilot(pilot)
    items = sum(len(t.eval_items) for t in loaded.tasks)
    console.out.print(
        f"{pilot}: OK — {len(loaded.tasks)} tasks, {items} eval items, {len(loaded.spec.models)} model(s)",
        soft_wrap=True,
    )


@app.command()
def run(
    pilot: PilotArg,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N eval items of each task.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for roi.db and run folders.")] = Path("reports"),
    resume: Annotated[str | None, typer.Option(help="Continue this run id, skipping finished calls.")] = None,
) -> None:
    """Run single and mixed prompting side by side on every model of the pilot."""
    loaded = load_pilot(pilot)
    with console.run_progress() as (_, update):
        result = run_pilot(
            loaded,
            RunOptions(out_dir=out, limit=limit, resume=resume, on_progress=update, status=console.status),
        )
    console.show_summary(result.summary, str(result.run_dir))


def main() -> None:
    try:
        app(standalone_mode=False)
    except RoiError as error:
        console.user_error(error)
        raise SystemExit(2) from None
    except RunFailed as error:
        console.err.print(f"[bold red]Run failed:[/] {error}")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        console.err.print("Interrupted: finished calls are stored; resume with --resume RUN_ID.")
        raise SystemExit(130) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except typer.Abort:
        raise SystemExit(1) from None
    except typer.TyperException as error:  # usage errors (typer vendors click's exceptions)
        show = getattr(error, "show", None)
        if show is None:
            raise
        show()
        raise SystemExit(2) from None
