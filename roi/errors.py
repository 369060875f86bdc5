"""Errors meant for a person (the CLI prints them without a traceback) and the exit codes of `roi`."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """What `roi` exits with; the README's table says the same."""

    OK = 0  # the run (or command) completed, and nothing regressed against the baseline
    FAILED_TO_RUN = 1  # a model could not load, the store could not be written, the pilot is already running
    BAD_INPUT = 2  # bad input or usage: the message names file, line and field; nothing was written
    REGRESSED = 3  # the run completed, but the decision dropped a stage or a gate regressed
    INCOMPLETE = 4  # the run ended, but too many of a model's calls failed, or the run deadline stopped it
    INTERRUPTED = 130  # Ctrl-C: finished calls are stored


@dataclass
class Problem:
    """One thing wrong with an input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    name: str | None = None  # a warning's name, e.g. `no-monthly-volume` (errors need none)

    def render(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        parts = [p for p in (where, self.field) if p]
        prefix = " ".join(parts)
        shown = f"{prefix}: {self.message}" if prefix else self.message
        return f"{shown} [{self.name}]" if self.name else shown


class RoiError(Exception):
    """A user error (bad input, bad usage, missing model). Exit code 2."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: list[Problem] | str) -> None:
        self.problems = [Problem(problems)] if isinstance(problems, str) else problems
        super().__init__("\n".join(p.render() for p in self.problems))


class RunFailed(Exception):
    """The run could not complete (model failed to load, store unwritable). Exit code 1."""

    exit_code = ExitCode.FAILED_TO_RUN
