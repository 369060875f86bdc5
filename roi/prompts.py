"""Prompt assembly for the modes and parsing of answers back to their queries.

`single`: the task's instruction, `shots` examples, one query. `mixed`: labelled demonstration blocks
of several tasks and one query of each task of the group, answered in one call as lines
`A[n] (task) input -> answer`: echoing the task and input keeps a small model on the right task
(on Gemma 3 270M, bare `A[n]:` lines were mostly copies of the input).
Every call is split into a `prefix` shared by all calls of the same context (so a backend may reuse
its KV cache or a server its prompt cache) and a `suffix` holding the queries.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from roi.backends import GenerationRequest
from roi.datasets import Example
from roi.pilot import LoadedPilot, TaskData, shots_for

# `plan`: the recommended grouping run as its own mixed calls on the same items, when it differs from the
# mixed calls the pilot asked for (roi/runner.py), so the plan is measured rather than extrapolated.
Mode = Literal["single", "mixed", "plan"]
MODES: tuple[Mode, ...] = ("single", "mixed")

_ANSWER_LINE = re.compile(r"^\s*A\[(\d+)\][^\n]*?->[ \t]*(.*?)\s*$")


@dataclass(frozen=True)
class Query:
    task: str
    item: Example


@dataclass(frozen=True)
class PromptCall:
    """One model call a mode needs, before a model is chosen."""

    call_key: str  # stable across runs of the same pilot: used to resume and to cache
    mode: Mode
    prefix: str
    suffix: str
    queries: tuple[Query, ...]
    max_new_tokens: int
    stop: tuple[str, ...]

    @property
    def prompt(self) -> str:
        return self.prefix + self.suffix

    def request(self, key: str) -> GenerationRequest:
        """What a backend is sent for this call (under `key`, the call's id for one model). Only mixed
        calls carry the completeness check: a single call's stop string ends it at its first line."""
        check = None if self.mode == "single" else self.complete
        return GenerationRequest(key, self.prefix, self.suffix, self.max_new_tokens, self.stop, check)

    def complete(self, text: str) -> bool:
        """Whether `text` (the model's output so far) already gives every query of a mixed call a
        non-empty answer on finished lines: parse_mixed keeps the first non-empty answer per query, so
        nothing the model writes after can change what is scored. Gemma 3 270M sometimes restarts the
        list after its last answer and runs to its token budget; a local model stops here instead."""
        if self.mode == "single" or "\n" not in text:
            return False
        return all(a is not None for a in parse_mixed(text[: text.rfind("\n")], self.queries))


def _io(x: str) -> str:
    # An input spanning several lines would break the line-based format: keep it on one line.
    return " ".join(x.split())


def single_prefix(task: TaskData, shots: int) -> str:
    lines = [task.spec.instruction.strip(), ""]
    for ex in shots_for(task, shots):
        lines += [f"Input: {_io(ex.input)}", f"Output: {_io(ex.output)}", ""]
    return "\n".join(lines) + "\n"


def single_calls(task: TaskData, shots: int, items: list[Example]) -> list[PromptCall]:
    prefix = single_prefix(task, shots)
    return [
        PromptCall(
            call_key=f"single:{task.spec.name}:{item.id}",
            mode="single",
            prefix=prefix,
            suffix=f"Input: {_io(item.input)}\nOutput:",
            queries=(Query(task.spec.name, item),),
            max_new_tokens=task.spec.max_answer_tokens,
            stop=("\n",),
        )
        for item in items
    ]


def parse_single(text: str) -> str | None:
    """The answer is the first line of the continuation; an empty one cannot be parsed."""
    answer = text.split("\n", 1)[0].strip()
    return answer or None


def task_groups(pilot: LoadedPilot, names: Sequence[str] | None = None) -> list[list[TaskData]]:
    """Tasks that share mixed calls (roi.pilot.MixedMode.groups), of every task or of the tasks `names`,
    in pilot order."""
    chosen = [t.spec.name for t in pilot.tasks if names is None or t.spec.name in names]
    return [[pilot.task(name) for name in group] for group in pilot.spec.modes.mixed.groups(chosen)]


def _block(pairs: Sequence[tuple[str, str, str | None]]) -> str:
    questions = [f"Q[{n}] ({task}): {_io(x)}" for n, (task, x, _) in enumerate(pairs, 1)]
    answers = [answer_head(n, task, x) + f" {_io(y)}" for n, (task, x, y) in enumerate(pairs, 1) if y is not None]
    return "\n".join(questions + answers)


def answer_head(n: int, task: str, x: str) -> str:
    return f"A[{n}] ({task}) {_io(x)} ->"


def mixed_prefix(group: list[TaskData], shots_per_task: int, rng: random.Random) -> str:
    header = [
        "Answer several tasks at once. Each query names its task; answer each on its own line A[n].",
        "Tasks:",
    ]
    header += [f"- {t.spec.name}: {_io(t.spec.instruction)}" for t in group]
    blocks = []
    for j in range(shots_per_task):
        pairs = [(t.spec.name, t.examples[j].input, t.examples[j].output) for t in group]
        rng.shuffle(pairs)
        blocks.append(_block(pairs))
    return "\n".join(header) + "\n\n" + "".join(b + "\n\n" for b in blocks)


def mixed_calls(
    group: list[TaskData],
    group_index: int,
    shots_per_task: int,
    seed: int,
    items: dict[str, list[Example]],
    mode: Mode = "mixed",
) -> list[PromptCall]:
    """One call per item index of the group's tasks. `plan` calls are keyed by their tasks' names (the
    recommended group is not one of the pilot's groups), mixed calls by the group's index."""
    group_key = f"g{group_index}" if mode == "mixed" else "+".join(t.spec.name for t in group)
    rng = random.Random(f"{seed}:{mode}:{group_key}")
    prefix = mixed_prefix(group, shots_per_task, rng)
    longest = max(len(items[t.spec.name]) for t in group)
    calls = []
    for i in range(longest):
        queries = [Query(t.spec.name, items[t.spec.name][i]) for t in group if i < len(items[t.spec.name])]
        rng.shuffle(queries)
        pairs: list[tuple[str, str, str | None]] = [(q.task, q.item.input, None) for q in queries]
        # Each answer line echoes its task and input before the answer: budget for that too.
        budget = sum(pilot_task(group, q.task).spec.max_answer_tokens + 8 + len(q.item.input) // 2 for q in queries)
        calls.append(
            PromptCall(
                call_key=f"{mode}:{group_key}:{i}",
                mode=mode,
                prefix=prefix,
                suffix=_block(pairs) + "\n" + answer_head(1, queries[0].task, queries[0].item.input),
                queries=tuple(queries),
                max_new_tokens=budget,
                # A small model happily invents an answer line past the last query: stop there. Not at a
                # second `A[1]`, although Gemma 3 270M sometimes restarts the list and runs to its budget:
                # a restart may restate an answer the first line left empty (parse_mixed takes it).
                stop=("\n\n", "\nQ[", f"\nA[{len(queries) + 1}]"),
            )
        )
    return calls


def pilot_task(group: list[TaskData], name: str) -> TaskData:
    return next(t for t in group if t.spec.name == name)


def parse_mixed(text: str, queries: tuple[Query, ...]) -> list[str | None]:
    """Answers by query position from the continuation of the first answer line; missing or empty ones
    are None. A line `A[n] (task) input -> answer` answers query n; when the model garbles the echoed
    task or input, the text after the line's first `->` is taken."""
    answers: list[str | None] = [None] * len(queries)
    heads = [answer_head(n, q.task, q.item.input) for n, q in enumerate(queries, 1)]
    for line in (heads[0] + text if heads else text).split("\n"):
        found = _ANSWER_LINE.match(line)
        if not found:
            continue
        n = int(found.group(1))
        if not 1 <= n <= len(queries) or answers[n - 1] is not None:
            continue
        line = line.strip()
        answer = line[len(heads[n - 1]) :].strip() if line.startswith(heads[n - 1]) else found.group(2)
        answers[n - 1] = answer or None
    return answers


def eval_items(pilot: LoadedPilot, limit: int | None) -> dict[str, list[Example]]:
    """The eval items both modes score (the same ones, so comparisons are paired)."""
    return {t.spec.name: t.eval_items[:limit] if limit else list(t.eval_items) for t in pilot.tasks}


def build_calls(pilot: LoadedPilot, limit: int | None = None) -> list[PromptCall]:
    """Every call the enabled modes need, single first, deterministic for the pilot's seed."""
    items = eval_items(pilot, limit)
    modes = pilot.spec.modes
    calls: list[PromptCall] = []
    if modes.single.enabled:
        for task in pilot.tasks:
            calls += single_calls(task, modes.single.shots, items[task.spec.name])
    if modes.mixed.enabled:
        for g, group in enumerate(task_groups(pilot)):
            calls += mixed_calls(group, g, modes.mixed.shots_per_task, pilot.spec.seed, items)
    return calls


def plan_calls(pilot: LoadedPilot, group: list[str], limit: int | None = None) -> list[PromptCall]:
    """The recommended group's tasks in mixed calls of their own, on the items both modes scored:
    chunks of `tasks_per_call` in pilot order, as the pilot's own mixed calls are formed. None when
    the pilot's mixed calls already hold exactly this grouping, or there is no group."""
    if len(group) < 2 or [[t.spec.name for t in g] for g in task_groups(pilot, group)] == run_groups(pilot):
        return []  # no group, or the pilot's own mixed calls measured this grouping
    items = eval_items(pilot, limit)
    shots = pilot.spec.modes.mixed.shots_per_task
    chunks = task_groups(pilot, group)
    return [c for i, chunk in enumerate(chunks) for c in mixed_calls(chunk, i, shots, pilot.spec.seed, items, "plan")]


def run_groups(pilot: LoadedPilot) -> list[list[str]]:
    """The task names of each group the pilot's own mixed calls hold (none when mixed mode is off)."""
    return [[t.spec.name for t in g] for g in task_groups(pilot)] if pilot.spec.modes.mixed.enabled else []


def parse_answers(call: PromptCall, text: str) -> list[str | None]:
    if call.mode == "single":
        return [parse_single(text)]
    return parse_mixed(text, call.queries)
