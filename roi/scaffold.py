"""`roi init`: a new pilot an analyst starts from, valid as written: a commented YAML file, example CSV
files with the right header, and the pilot's JSON Schema for editors. `roi schema` prints the schema.

Tasks given as `name:choice/choice/...` get a `choice` scorer; a bare name gets `exact`. Without tasks
the scaffold holds two small worked tasks, so `roi run NEW.yaml --limit 2` runs as written; one task gets
a worked one beside it, since mixed prompting needs two. The files are written owner-only, like all
roi writes: the data files are where customer text goes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from roi.errors import Problem, RoiError
from roi.files import write_atomic
from roi.pilot import NAME_PATTERN, Pilot

SCHEMA_FILE = "roi-pilot.schema.json"
EXAMPLES, EVAL = 6, 6  # rows per placeholder file: enough for the default shots and `--limit 2`


@dataclass(frozen=True)
class TaskDraft:
    name: str
    choices: list[str] = field(default_factory=list)  # empty: an `exact` scorer
    rows: list[tuple[str, str]] = field(default_factory=list)  # worked rows; empty: placeholders
    instruction: str = ""  # empty: a placeholder sentence
    comment: str = ""  # a line above the task in the pilot file


@dataclass(frozen=True)
class PilotDraft:
    name: str
    business_unit: str = "Your unit"
    owner: str = "analyst@example.com"
    model: str = "embedded"  # `embedded`, a local path, or `openai:MODEL`
    tasks: list[TaskDraft] = field(default_factory=list)


WORKED = [
    TaskDraft(
        "sentiment",
        ["positive", "negative"],
        instruction="Classify the customer's message as positive or negative.",
        rows=[
            ("Thank you, the blender works perfectly!", "positive"),
            ("The parcel arrived broken and nobody answers.", "negative"),
            ("Great support, solved in minutes.", "positive"),
            ("I was charged twice this month.", "negative"),
            ("Love the new design, keep it up!", "positive"),
            ("My order is two weeks late.", "negative"),
            ("Fantastic quality, thanks!", "positive"),
            ("The app crashes every time I log in.", "negative"),
            ("Quick delivery and friendly staff.", "positive"),
            ("Please cancel, this is useless.", "negative"),
            ("Exactly what I needed.", "positive"),
            ("Still waiting for my refund.", "negative"),
        ],
    ),
    TaskDraft(
        "department",
        ["billing", "shipping", "technical"],
        instruction="Route the customer's message to one department: billing, shipping or technical.",
        rows=[
            ("I was charged twice for my March invoice.", "billing"),
            ("My parcel says delivered but nothing arrived.", "shipping"),
            ("The app crashes when I open settings.", "technical"),
            ("Can I get a copy of last year's receipts?", "billing"),
            ("When will my order leave the warehouse?", "shipping"),
            ("I cannot reset my password.", "technical"),
            ("Please refund the duplicate payment.", "billing"),
            ("The tracking number does not work.", "shipping"),
            ("The website shows an error 500.", "technical"),
            ("My card was declined but money was taken.", "billing"),
            ("The courier left the box in the rain.", "shipping"),
            ("Login fails on the mobile app.", "technical"),
        ],
    ),
]


def parse_task(text: str) -> TaskDraft:
    """`urgency:low/medium/high` (a choice task) or `summary` (an exact-match task)."""
    name, _, choices = text.partition(":")
    name = name.strip()
    if not re.match(NAME_PATTERN, name):
        raise RoiError([Problem(f"{name!r} is not a task name (letters, digits, _ . -)", None, None, "--task")])
    labels = [c.strip() for c in choices.split("/") if c.strip()]
    if choices and len(labels) < 2:
        raise RoiError([Problem(f"{text!r}: give at least two choices, e.g. {name}:yes/no", None, None, "--task")])
    return TaskDraft(name, labels)


def write_scaffold(folder: Path, draft: PilotDraft, force: bool = False) -> list[Path]:
    """Write the pilot, its data files and the schema under `folder`; refuse to overwrite unless `force`."""
    if not re.match(NAME_PATTERN, draft.name):
        raise RoiError([Problem(f"{draft.name!r} is not a pilot name (letters, digits, _ . -)", None, None, "NAME")])
    tasks = _with_a_second(draft.tasks or WORKED)
    if len({t.name for t in tasks}) != len(tasks):
        raise RoiError([Problem("two tasks have the same name", None, None, "--task")])
    files = {folder / f"{draft.name}.yaml": pilot_yaml(draft, tasks), folder / SCHEMA_FILE: schema_text()}
    for task in tasks:
        for kind, rows in (("examples", _rows(task, 0, EXAMPLES)), ("eval", _rows(task, EXAMPLES, EVAL))):
            files[folder / "data" / f"{task.name}_{kind}.csv"] = _csv(rows)
    existing = [str(p) for p in files if p.exists() and p.name != SCHEMA_FILE]  # the schema is roi's own
    if existing and not force:
        raise RoiError([Problem("already exists (use --force to overwrite it)", p) for p in existing])
    for path, content in files.items():
        write_atomic(path, content)
    return list(files)


def _with_a_second(tasks: list[TaskDraft]) -> list[TaskDraft]:
    """One task gets a worked one beside it: a mixed call answers one item of each of two tasks or more."""
    if len(tasks) != 1:
        return tasks
    worked = next(t for t in WORKED if t.name != tasks[0].name)
    comment = "a worked second task: mixed prompting needs two or more; replace it with one of yours"
    return [*tasks, replace(worked, comment=comment)]


def _rows(task: TaskDraft, start: int, count: int) -> list[tuple[str, str, str]]:
    if task.rows:
        picked = task.rows[start : start + count]
    else:
        answers = task.choices or [f"expected answer {n}" for n in range(1, count + 1)]
        picked = [(f"an input for {task.name} ({start + n})", answers[n % len(answers)]) for n in range(1, count + 1)]
    prefix = "ex" if start == 0 else "ev"
    return [(f"{prefix}{n}", x, y) for n, (x, y) in enumerate(picked, 1)]


def _csv(rows: list[tuple[str, str, str]]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "input", "output"])
    writer.writerows(rows)
    return buffer.getvalue()


def _q(value: str) -> str:
    """A YAML scalar: a JSON string is valid YAML and needs no escaping rules of its own."""
    return json.dumps(value, ensure_ascii=False)


def _model_yaml(model: str) -> str:
    if model.startswith("openai:"):
        return (
            f"  - name: api-model\n"
            f"    backend: openai\n"
            f"    model: {_q(model.removeprefix('openai:'))}\n"
            f"    api_key_env: OPENAI_API_KEY          # the variable's name; the key never goes in this file\n"
            f"    # base_url: https://api.example.com/v1  # any OpenAI-compatible server (vLLM, llama.cpp, ...)\n"
            f"    price: {{input_per_1m: 0.15, output_per_1m: 0.60}}  # USD per million tokens: set yours\n"
        )
    name = "gemma-270m" if model == "embedded" else "local-model"
    return (
        f"  - name: {name}\n"
        f"    backend: transformers\n"
        f"    model: {_q(model)}  # embedded (Gemma 3 270M, ships with roi), a model folder or a .gguf file\n"
        f"    cost: {{usd_per_hour: 0.40}}  # what the machine costs per hour: set yours\n"
    )


def _task_yaml(task: TaskDraft) -> str:
    if task.choices:
        instruction = task.instruction or f"Say what the input is; answer with one of: {', '.join(task.choices)}."
        scorer = f"{{type: choice, choices: [{', '.join(_q(c) for c in task.choices)}]}}"
    else:
        instruction = task.instruction or "Tell the model what to do with the input, in one or two sentences."
        scorer = "exact"
    heading = f"  # {task.comment}\n" if task.comment else ""
    return heading + (
        f"  - name: {task.name}\n"
        f"    instruction: {_q(instruction)}\n"
        f"    examples: data/{task.name}_examples.csv  # few-shot examples: id,input,output\n"
        f"    eval: data/{task.name}_eval.csv  # labelled items roi scores: 30 or more for a decision\n"
        f"    scorer: {scorer}\n"
        f"    monthly_volume: 10000  # items per month in production: set yours\n"
        f"    cost_per_error_usd: 1.0  # what one wrong answer costs the business: set yours\n"
    )


def pilot_yaml(draft: PilotDraft, tasks: list[TaskDraft]) -> str:
    """The pilot file: every section present, each value commented with what to put there."""
    return (
        f"# yaml-language-server: $schema=./{SCHEMA_FILE}\n"
        f"# A pilot for roi: does one mixed call serve these tasks as well as one call per task?\n"
        f"# Every key: docs/pilot-format.md in roi's repository. Check it with: roi validate {draft.name}.yaml\n"
        f"pilot: {draft.name}\n"
        f"business_unit: {_q(draft.business_unit)}\n"
        f"owner: {_q(draft.owner)}\n"
        f"description: >\n"
        f"  What the tasks are, who uses their answers, and what the pilot should decide.\n"
        f"models:\n{_model_yaml(draft.model)}"
        f"tasks:\n{''.join(_task_yaml(t) for t in tasks)}"
        f"modes:\n"
        f"  single: {{shots: 4}}  # one call per item, with 4 examples\n"
        f"  mixed: {{shots_per_task: 2, tasks_per_call: all}}  # one call answers one item of each task\n"
        f"economics: {{pilot_investment_usd: 5000, horizon_months: 12}}\n"
        f"gates:  # thresholds of the staged rollout (fractions are 0..1)\n"
        f"  max_accuracy_drop: 0.05  # mixed may be at most 5 points worse than single, per task\n"
        f"  min_cost_saving: 0.2  # and must save at least 20% of single's cost\n"
        f"  max_p95_latency_s: 10.0\n"
        f"  min_items_per_task: 30\n"
        f"operations:\n"
        f"  reviewers: []  # who reviews doubtful outputs (needed for stage 2)\n"
        f"  # escalation_contact: lead@example.com\n"
        f"report: {{language: en}}  # or ja\n"
        f"seed: 1\n"
    )


def pilot_schema() -> dict[str, Any]:
    """The pilot's JSON Schema (draft 2020-12) for editors, with the shorthands the loader accepts."""
    schema = Pilot.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "roi pilot"
    defs = schema.get("$defs", {})
    task = defs.get("TaskSpec", {}).get("properties", {})
    if "scorer" in task:  # `scorer: exact` is short for `{type: exact}`
        kinds = sorted(m["properties"]["type"]["const"] for m in defs.values() if _is_scorer(m))
        task["scorer"] = {"anyOf": [{"enum": kinds}, task["scorer"]], "description": "a scorer or its type"}
    probe = defs.get("ProbeSpec", {}).get("properties", {})
    if "mixtures" in probe:  # a list of shares aligned with `tasks`, or "uniform"
        item = probe["mixtures"].get("items", {})
        shorthand = [{"const": "uniform"}, {"type": "array", "items": {"type": "number", "minimum": 0}}]
        probe["mixtures"]["items"] = {"anyOf": [*shorthand, item]}
    return schema


def _is_scorer(model: dict[str, Any]) -> bool:
    kind = model.get("properties", {}).get("type", {})
    return isinstance(kind, dict) and "const" in kind


def schema_text() -> str:
    return json.dumps(pilot_schema(), indent=2, ensure_ascii=False) + "\n"
