"""Errors meant for a person: the CLI prints them without a traceback and exits 2."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Problem:
    """One thing wrong with an input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None

    def render(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        parts = [p for p in (where, self.field) if p]
        prefix = " ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class RoiError(Exception):
    """A user error (bad input, bad usage, missing model). Exit code 2."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | str) -> None:
        self.problems = [Problem(problems)] if isinstance(problems, str) else problems
        super().__init__("\n".join(p.render() for p in self.problems))


class RunFailed(Exception):
    """The run could not complete (model failed to load, store unwritable). Exit code 1."""

    exit_code = 1
