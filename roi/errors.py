"""Errors meant for a person (the CLI prints them without a traceback) and the exit codes of `roi`."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """What `roi` exits with. `meaning` is the README's table, word for word (a test holds them equal),
    and `roi --help` lists it."""

    OK = 0
    FAILED_TO_RUN = 1
    BAD_INPUT = 2
    REGRESSED = 3
    INCOMPLETE = 4
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return EXIT_MEANINGS[self]


EXIT_MEANINGS = {
    ExitCode.OK: "the run (or command) completed, and nothing regressed against the baseline",
    ExitCode.FAILED_TO_RUN: (
        "failed to run (a model could not load, the store could not be written, the pilot is already running); "
        "the run is kept as `failed` and a plain re-run resumes it"
    ),
    ExitCode.BAD_INPUT: "bad input or usage: the message names file, line and field; nothing was written",
    ExitCode.REGRESSED: (
        "the run completed, but the decision dropped a stage or a gate regressed against the accepted baseline "
        "(or, before one is accepted, the previous complete run)"
    ),
    ExitCode.INCOMPLETE: (
        "the run ended, but its evidence is incomplete: a stop left calls unmade (the run deadline "
        "`--max-minutes`, lock wait included, or `--max-cost`), or more than `limits.incomplete_failed_call_rate` "
        "(default 10%) of a model's calls failed, or all of them; wins over 3, and `--quiet` names the cause"
    ),
    ExitCode.INTERRUPTED: (
        "interrupted (Ctrl-C): finished calls are stored; the same `roi run` command (or `--resume RUN_ID`) continues"
    ),
}


@dataclass
class Problem:
    """One thing wrong with an input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    name: str | None = None  # a warning's name, e.g. `no-monthly-volume` (errors need none)

    def where(self) -> str:
        """`file:line field`, as much of it as is known."""
        at = (self.file or "") + ("" if self.line is None else f":{self.line}")
        return " ".join(p for p in (at, self.field) if p)

    def render(self) -> str:
        prefix = self.where()
        shown = f"{prefix}: {self.message}" if prefix else self.message
        return f"{shown} [{self.name}]" if self.name else shown


def render_together(problems: list[Problem]) -> list[str]:
    """Each problem rendered once, with the places of problems that say the same thing joined in one
    line (three tasks without a monthly volume read as one warning naming the three lines)."""
    same: dict[tuple[str, str | None], list[Problem]] = {}
    for p in problems:
        same.setdefault((p.message, p.name), []).append(p)
    out = []
    for group in same.values():
        first = group[0]
        if len(group) == 1 or not all(p.where() for p in group):
            out += [p.render() for p in group]
            continue
        files = [None, *(p.file for p in group)]  # each place's previous place's file
        places = [_place(p, previous) for p, previous in zip(group, files, strict=False)]
        shown = f"{', '.join(places)}: {first.message}"
        out.append(f"{shown} [{first.name}]" if first.name else shown)
    return out


class RoiError(Exception):
    """A user error (bad input, bad usage, missing model). Exit code 2."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: list[Problem] | str) -> None:
        self.problems = [Problem(problems)] if isinstance(problems, str) else problems
        super().__init__("\n".join(render_together(self.problems)))


class RunFailed(Exception):
    """The run could not complete (model failed to load, store unwritable). Exit code 1."""

    exit_code = ExitCode.FAILED_TO_RUN


def _place(problem: Problem, previous_file: str | None) -> str:
    """Where a problem is, without its file when the place before it names the same file and this one
    has a line (`:21 tasks[1].monthly_volume`)."""
    if problem.file is None or problem.file != previous_file or problem.line is None:
        return problem.where()
    return problem.where().removeprefix(problem.file)
