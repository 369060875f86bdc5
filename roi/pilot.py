"""The pilot file: its schema (pydantic, strict) and the loader that turns YAML into a `LoadedPilot`.

Every problem found is reported with the file, the line (where YAML gives one) and the field path.
Loading never writes anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from roi.datasets import Example, load_examples
from roi.endpoints import key_transport_problem, url_problem
from roi.errors import Problem, RoiError
from roi.pilot_checks import check_pilot, check_structure, did_you_mean
from roi.scoring import SCORERS, ScorerSpec
from roi.yaml_document import YamlDocument, read_yaml

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- models


class LocalCost(Strict):
    usd_per_hour: NonNegative


class Price(Strict):
    """API prices in USD per million tokens, and the cost levers a provider's price list offers: prompt
    caching (cached input, cache writes, the shortest prefix cached) and a batch API's discount."""

    input_per_1m: NonNegative
    cached_input_per_1m: NonNegative | None = None
    output_per_1m: NonNegative
    cache_write_per_1m: NonNegative | None = None  # writing a prefix to the cache; None: the input price
    batch_discount: Fraction | None = None  # share off every token on the provider's batch API; None: no batch API
    min_cacheable_tokens: int = Field(default=0, ge=0)  # a shorter shared prefix is never cached


# What a pilot may pass to vLLM's batch runner: engine and resource settings only. A pilot file may come
# from someone else, so it names no program (the interpreter is ROI_VLLM_PYTHON, set by whoever runs
# roi), no flag that loads code (--trust-remote-code, plugins, worker classes) and no variable that
# changes what runs (LD_PRELOAD, PYTHONPATH): docs/api-models.md, "Self-hosted: vLLM's batch runner".
RUNNER_FLAGS = frozenset({
    "--dtype", "--max-model-len", "--enable-prefix-caching", "--no-enable-prefix-caching",
    "--enable-prompt-tokens-details", "--chat-template", "--max-num-seqs", "--max-num-batched-tokens",
    "--seed", "--kv-cache-dtype", "--block-size", "--enforce-eager", "--gpu-memory-utilization",
    "--tensor-parallel-size", "--quantization",
})  # fmt: skip
RUNNER_VARIABLES = frozenset({
    "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU", "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
})  # fmt: skip


class BatchRunner(Strict):
    """A batch job run on this machine by vLLM's batch runner instead of a provider's batches endpoint."""

    model_path: str = Field(min_length=1)  # `embedded`, or the model folder vLLM loads
    args: list[str] = []  # further engine settings (RUNNER_FLAGS), e.g. --dtype bfloat16, --chat-template ...
    env: dict[str, str] = {}  # further environment (RUNNER_VARIABLES), e.g. VLLM_CPU_KVCACHE_SPACE

    @field_validator("args")
    @classmethod
    def _engine_flags(cls, args: list[str]) -> list[str]:
        flags = [a.partition("=")[0] for a in args if a.startswith("-")]
        refused = [f for f in flags if f not in RUNNER_FLAGS]
        if refused:
            raise ValueError(f"{', '.join(refused)} cannot be set here; allowed: {', '.join(sorted(RUNNER_FLAGS))}")
        return args

    @field_validator("env")
    @classmethod
    def _engine_variables(cls, env: dict[str, str]) -> dict[str, str]:
        refused = [k for k in env if k not in RUNNER_VARIABLES]
        if refused:
            raise ValueError(f"{', '.join(refused)} cannot be set here; allowed: {', '.join(sorted(RUNNER_VARIABLES))}")
        return env


_OPENAI_ONLY = ("base_url", "api_key_env", "price", "batch_runner")


class ModelSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    backend: Literal["transformers", "openai"]
    model: str = Field(min_length=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_batch: int | None = Field(default=None, ge=1, le=1024)
    precision: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    cost: LocalCost | None = None
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    endpoint: Literal["chat", "completions"] = "chat"
    max_concurrency: int = Field(default=4, ge=1, le=256)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)  # per attempt, whole reply included
    max_retries: int = Field(default=4, ge=0, le=20)
    max_retry_after_s: float = Field(default=60.0, ge=0, le=3600)  # a server's Retry-After is capped here
    price: Price | None = None
    batch: bool = False  # send the run's calls as one batch job (roi/backends/batch.py)
    batch_runner: BatchRunner | None = None  # run that job here through vLLM's batch runner

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        problem = None if url is None else url_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url

    @model_validator(mode="after")
    def _fields_fit_backend(self) -> ModelSpec:
        if self.backend == "transformers":
            wrong = [f for f in _OPENAI_ONLY if getattr(self, f) is not None] + (["batch"] if self.batch else [])
            if wrong:
                raise ValueError(f"{', '.join(wrong)} only apply to backend 'openai'")
        elif self.cost is not None:
            raise ValueError("cost.usd_per_hour applies to local models; API models use price")
        elif self.max_batch is not None:
            raise ValueError("max_batch applies to local models; API models use max_concurrency")
        elif self.precision != "auto":
            raise ValueError("precision applies to local models (the output layer's screen)")
        elif self.batch_runner is not None:
            self._check_batch_runner()
        elif self.base_url is None and self.api_key_env is None:
            # Without base_url the official endpoint is called, and it needs a key.
            raise ValueError("set api_key_env (the name of the variable holding the key) or a base_url")
        return self

    def _check_batch_runner(self) -> None:
        if not self.batch:
            raise ValueError("batch_runner runs batch jobs: set batch: true as well")
        if self.base_url is not None:
            raise ValueError("batch_runner runs the job on this machine: base_url does not apply")
        if self.endpoint != "chat":
            # vLLM's batch runner accepts only /v1/chat/completions lines.
            raise ValueError(
                "vLLM's batch runner serves only the chat endpoint: set endpoint: chat "
                "(for a base model, pass a chat template that keeps the prompt as it is; see docs/scaling.md)"
            )


class ExampleRow(Strict):
    input: str = Field(min_length=1)
    output: str = Field(min_length=1)
    id: str | None = None


class TaskSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    instruction: str = Field(min_length=1)
    examples: str | list[ExampleRow]
    eval: str | list[ExampleRow]
    scorer: ScorerSpec
    monthly_volume: int | None = Field(default=None, ge=0)  # None: not set, monthly figures cannot be projected
    cost_per_error_usd: NonNegative = 0.0
    # The longest an answer may take in production (default: gates.max_p95_latency_s). A batch API, which
    # answers within a day, is considered for this task only when it allows that long.
    max_latency_s: float | None = Field(default=None, gt=0)
    max_answer_tokens: int = Field(default=16, ge=1, le=512)

    @field_validator("scorer", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


# ---------------------------------------------------------------- modes, economics, gates


class SingleMode(Strict):
    enabled: bool = True
    shots: int = Field(default=4, ge=0, le=64)


class MixedMode(Strict):
    enabled: bool = True
    shots_per_task: int = Field(default=2, ge=0, le=64)
    tasks_per_call: int | Literal["all"] = "all"

    @field_validator("tasks_per_call")
    @classmethod
    def _at_least_two(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 2:
            raise ValueError("a mixed call holds at least 2 tasks (or 'all')")
        return value

    def groups(self, names: Sequence[str]) -> list[list[str]]:
        """The tasks `names` (in order) as the groups their mixed calls hold: chunks of `tasks_per_call`,
        the last maybe smaller; a lone last task joins the group before it (it cannot be mixed alone)."""
        width = max(1, len(names) if self.tasks_per_call == "all" else self.tasks_per_call)
        groups = [list(names[i : i + width]) for i in range(0, len(names), width)]
        if len(groups) > 1 and len(groups[-1]) == 1:
            lone = groups.pop()
            groups[-1] += lone
        return groups


class Modes(Strict):
    single: SingleMode = SingleMode()
    mixed: MixedMode = MixedMode()


class Economics(Strict):
    pilot_investment_usd: NonNegative = 0.0
    horizon_months: int = Field(default=12, ge=1, le=120)


class Gates(Strict):
    """Thresholds for the staged rollout. Fractions are 0..1."""

    max_accuracy_drop: Fraction = 0.05
    min_cost_saving: Fraction = 0.2
    max_p95_latency_s: float = Field(default=10.0, gt=0)
    max_swap_rate: Fraction = 0.02
    max_unparseable_rate: Fraction = 0.05
    max_failed_call_rate: Fraction = 0.05  # failed calls per model and mode (their items count as wrong)
    min_items_per_task: int = Field(default=30, ge=1)


class ReportSettings(Strict):
    language: Literal["en", "ja"] = "en"


class Notify(Strict):
    """Where a scheduled re-run reports a decision change or a regression (roi/notify.py).
    The URL itself lives in an environment variable: webhook URLs often carry a secret token."""

    webhook_url_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class Limits(Strict):
    """How long a run may take, and how many failed calls it may have before its exit code says so
    (exit 4, docs/cron.md)."""

    incomplete_failed_call_rate: Fraction = 0.10  # a model with more failed calls than this (or all): exit 4
    max_run_minutes: float | None = Field(default=None, gt=0, le=7 * 24 * 60)  # overall deadline; None: none


class Operations(Strict):
    """Who runs a rollout and what happens to a doubtful output (the report's checklist; stage 2 gate)."""

    rollout_owner: str | None = None  # defaults to the pilot's owner
    reviewers: list[str] = []  # people who review disagreements and doubtful outputs
    escalation_contact: str | None = None  # who decides when a reviewer cannot
    escalation_hours: float = Field(default=24.0, gt=0, le=24 * 30)  # time to answer an escalation
    review_share: Fraction = 0.05  # share of mixed outputs sampled for human review in stages 1-2
    audit_every_days: int = Field(default=30, ge=1, le=365)  # re-run the pilot this often
    fallback: Literal["single", "human"] = "single"  # what serves an item whose mixed output is doubtful


class ProbeSpec(Strict):
    """The paper's calibration probe (roi/probe/, docs/probe.md). `tasks` name tasks of the
    pilot that share one input space; each mixture gives the share of in-context examples per task:
    a list aligned with `tasks`, a mapping task -> share, or "uniform". Shares are normalised."""

    tasks: list[str] = Field(min_length=2, max_length=8)
    mixtures: list[dict[str, NonNegative]] = Field(min_length=1, max_length=32)
    examples_per_prompt: int = Field(default=20, ge=1, le=200)
    prompts_per_mixture: int = Field(default=20, ge=2, le=2000)
    beam_width: int = Field(default=0, ge=0, le=16)  # top-K check; 0 = the number of tasks in the mixture
    seed: int | None = None  # None: the pilot's seed
    models: list[str] | None = None  # None: every model of the pilot
    # API models (roi/backends/openai_logprobs.py, docs/probe.md "API models"): `echo` reads the prompt's own logprobs
    # (exact up to the server's weights); `top_logprobs` walks each answer through the top-N lists of
    # one-token calls (an estimate, or an upper bound when the answer drops out); `auto` tries echo once.
    api_method: Literal["auto", "echo", "top_logprobs"] = "auto"
    top_logprobs: int = Field(default=20, ge=1, le=20)  # N; OpenAI's maximum is 20
    max_calls_per_prompt: int = Field(default=40, ge=1, le=1000)  # top-logprob calls per prompt, at most

    @field_validator("mixtures", mode="before")
    @classmethod
    def _as_mappings(cls, value: Any, info: Any) -> Any:
        tasks = info.data.get("tasks") or []
        if not isinstance(value, list):
            return value
        return [_mixture_mapping(m, tasks, i) for i, m in enumerate(value)]

    @field_validator("tasks")
    @classmethod
    def _distinct_tasks(cls, tasks: list[str]) -> list[str]:
        if len(set(tasks)) != len(tasks):
            raise ValueError("a task is listed twice")
        return tasks

    @field_validator("mixtures")
    @classmethod
    def _shares(cls, mixtures: list[dict[str, float]], info: Any) -> list[dict[str, float]]:
        tasks = info.data.get("tasks") or []
        for i, mixture in enumerate(mixtures):
            unknown = sorted(set(mixture) - set(tasks))
            if unknown:
                raise ValueError(f"mixtures[{i}]: {', '.join(unknown)} not in probe.tasks")
            total = sum(mixture.values())
            if abs(total - 1.0) > 0.02:
                raise ValueError(f"mixtures[{i}]: shares add up to {total:g}, not 1")
        return mixtures


def _mixture_mapping(value: Any, tasks: list[str], index: int) -> Any:
    """A mixture as {task: share}: "uniform" and lists aligned with `tasks` are shorthands."""
    if value == "uniform":
        return {t: 1.0 / len(tasks) for t in tasks} if tasks else value
    if isinstance(value, list):
        if len(value) != len(tasks):
            raise ValueError(f"mixtures[{index}]: {len(value)} shares for {len(tasks)} probe tasks")
        return dict(zip(tasks, value, strict=True))
    return value


class Pilot(Strict):
    pilot: str = Field(pattern=NAME_PATTERN)
    business_unit: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    description: str = ""
    models: list[ModelSpec] = Field(min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    modes: Modes = Modes()
    economics: Economics = Economics()
    gates: Gates = Gates()
    report: ReportSettings = ReportSettings()
    operations: Operations = Operations()
    notify: Notify = Notify()
    limits: Limits = Limits()
    probe: ProbeSpec | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> Pilot:
        hook = self.notify.webhook_url_env
        if hook is not None and any(m.api_key_env == hook for m in self.models):
            raise ValueError(f"{hook} holds the webhook URL (notify.webhook_url_env); it cannot be an api_key_env")
        return self


# ---------------------------------------------------------------- loaded pilot


@dataclass(frozen=True)
class TaskData:
    spec: TaskSpec
    examples: list[Example]
    eval_items: list[Example]


@dataclass(frozen=True)
class LoadedPilot:
    spec: Pilot
    path: Path
    sha256: str
    tasks: list[TaskData]
    warnings: list[Problem] = field(default_factory=list)  # named, located; the CLI prints them
    doc: YamlDocument | None = field(default=None, repr=False)  # the file as read, to locate later problems

    @property
    def name(self) -> str:
        return self.spec.pilot

    def locate(self, loc: tuple[str | int, ...]) -> Problem:
        """An empty Problem at the file, line and field of `loc` (e.g. `("models", 0, "model")`)."""
        return dataclasses.replace(_where(self.doc, loc), file=str(self.path))

    def task(self, name: str) -> TaskData:
        return next(t for t in self.tasks if t.spec.name == name)


def load_pilot(path: str | Path) -> LoadedPilot:
    """Read, validate and load a pilot file and its data files. Raises `RoiError` on any problem.
    The YAML is read defensively (roi/yaml_document.py): size and alias limits before anything else."""
    doc = read_yaml(Path(path))
    raw = _mapping(doc)
    try:
        spec = _validate(raw, doc)
    except RoiError as schema:  # the data files' problems too, so that one round names both
        raise RoiError(schema.problems + _data_file_problems(raw, doc)) from None
    structure = check_structure(spec, lambda loc: _where(doc, loc))
    if structure:
        raise RoiError(structure)
    tasks = _load_tasks(spec, doc)
    _check_golds(tasks, doc.path)
    _check_probe_inputs(spec, tasks, doc)
    _check_key_transport(spec, doc)
    loaded = LoadedPilot(spec, doc.path, hashlib.sha256(doc.text.encode()).hexdigest(), tasks, doc=doc)
    errors, warnings = check_pilot(spec, tasks, loaded.locate)
    if errors:
        raise RoiError(errors)
    return dataclasses.replace(loaded, warnings=warnings)


def pilot_name(path: str | Path) -> str:
    """The `pilot:` name of a pilot file, read without validating it or its data files (`roi history`
    of a pilot whose data has moved)."""
    doc = read_yaml(Path(path))
    name = _mapping(doc).get("pilot")
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise RoiError([Problem("no valid pilot name", str(doc.path), doc.line_of(("pilot",)), "pilot")])
    return name


def _where(doc: YamlDocument | None, loc: tuple[str | int, ...]) -> Problem:
    line = doc.line_of(loc) if doc is not None else None
    return Problem("", str(doc.path) if doc is not None else None, line, format_loc(loc))


def _mapping(doc: YamlDocument) -> dict[str, Any]:
    if doc.data is None:
        raise RoiError(
            [Problem("the file is empty; a pilot is a YAML mapping (pilot:, models:, tasks:, ...)", str(doc.path))]
        )
    if not isinstance(doc.data, dict):
        raise RoiError([Problem(f"the top level must be a mapping, not a {type(doc.data).__name__}", str(doc.path), 1)])
    return doc.data


def _validate(raw: dict[str, Any], doc: YamlDocument) -> Pilot:
    try:
        return Pilot.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = _clean_loc(e["loc"])
            problems.append(Problem(_message(e, loc), str(doc.path), doc.line_of(loc), format_loc(loc) or None))
        raise RoiError(problems) from None


# Tags pydantic puts in an error's path for the member of a union it tried (a scorer's type, or the
# alternatives of the schema's few other unions): not keys of the pilot file.
_UNION_TAGS = {*SCORERS, "str", "list[ExampleRow]", "int", "literal['all']"}


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # pydantic adds the union member's tag (e.g. 'choice') and validator names to the path; drop them.
    return tuple(p for p in loc if not (isinstance(p, str) and (p in _UNION_TAGS or p.startswith("function-"))))


def _message(error: Any, loc: tuple[str | int, ...]) -> str:
    """pydantic's message in the words of a pilot file (where "input" is a CSV column, not the value)."""
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else ""
        hint = did_you_mean(key, keys_at(loc[:-1])) or "; check its spelling (unknown keys are errors)"
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"'{got}' is not one of: {', '.join(options)}{did_you_mean(str(got), options)}"
    if kind == "union_tag_invalid":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        tag, key = str(ctx.get("tag", got)), str(ctx.get("discriminator", "type")).strip("'")
        return f"unknown {key} '{tag}'{did_you_mean(tag, options)}; use one of: {', '.join(options)}"
    msg = str(error["msg"]).removeprefix("Value error, ")
    if msg.startswith("Input should be") and not isinstance(got, (dict, list)):
        return f"{msg.replace('Input should be', 'should be', 1)} (got {got!r})"
    return msg.replace("Input should be", "should be")


def keys_at(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the pilot schema allows in the mapping at `loc` (every scorer's, for `scorer`)."""
    models: list[type[BaseModel]] = [Pilot]
    for part in loc:
        if isinstance(part, int):
            continue
        inner: list[type[BaseModel]] = []
        for model in models:
            if part in model.model_fields:
                inner += _models_in(model.model_fields[part].annotation)
        models = inner
    return sorted({name for model in models for name in model.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _data_file_problems(raw: dict[str, Any], doc: YamlDocument) -> list[Problem]:
    """What is wrong in the data files a pilot names, read from the file as written (its schema failed)."""
    problems: list[Problem] = []
    tasks = raw.get("tasks")
    for index, task in enumerate(tasks if isinstance(tasks, list) else []):
        for key in ("examples", "eval"):
            value = task.get(key) if isinstance(task, dict) else None
            if isinstance(value, str):
                try:
                    _load_field(value, doc, ("tasks", index, key))
                except RoiError as error:
                    problems += error.problems
    return problems


def _load_tasks(spec: Pilot, doc: YamlDocument) -> list[TaskData]:
    """Every task's data; the problems of all of them at once."""
    tasks: list[TaskData] = []
    problems: list[Problem] = []
    for index in range(len(spec.tasks)):
        try:
            tasks.append(_load_task(spec, index, doc))
        except RoiError as error:
            problems += error.problems
    if problems:
        raise RoiError(problems)
    return tasks


def _load_task(spec: Pilot, index: int, doc: YamlDocument) -> TaskData:
    task = spec.tasks[index]
    examples = _load_field(task.examples, doc, ("tasks", index, "examples"))
    eval_items = _load_field(task.eval, doc, ("tasks", index, "eval"))
    needed = max(
        spec.modes.single.shots if spec.modes.single.enabled else 0,
        spec.modes.mixed.shots_per_task if spec.modes.mixed.enabled else 0,
    )
    if needed > len(examples):
        loc = ("tasks", index, "examples")
        raise RoiError(
            [
                Problem(
                    f"{needed} shots asked for (modes) but task '{task.name}' has only {len(examples)} examples",
                    str(doc.path),
                    doc.line_of(loc),
                    format_loc(loc),
                )
            ]
        )
    return TaskData(task, examples, eval_items)


def _load_field(value: str | list[ExampleRow], doc: YamlDocument, loc: tuple[str | int, ...]) -> list[Example]:
    where = Problem("", str(doc.path), doc.line_of(loc), format_loc(loc))
    if isinstance(value, str):
        return load_examples(doc.path.parent / value, where)
    if not value:
        raise RoiError([Problem("the list is empty", where.file, where.line, where.field)])
    return [
        Example(r.id or str(i + 1), r.input, r.output, f"{doc.path}:{doc.line_of((*loc, i))}")
        for i, r in enumerate(value)
    ]


def _check_golds(tasks: list[TaskData], path: Path) -> None:
    """Every eval item's expected output can be scored by its task's scorer (e.g. a regex compiles)."""
    problems = [
        Problem(f"item {item.id}: {problem}", str(path), None, f"tasks[{i}].eval")
        for i, task in enumerate(tasks)
        for item in task.eval_items
        if (problem := task.spec.scorer.gold_problem(item.output)) is not None
    ]
    if problems:
        raise RoiError(problems)


def shots_for(task: TaskData, count: int) -> list[Example]:
    """The few-shot examples a prompt shows: the first `count` examples, in file order."""
    return task.examples[:count]


def probe_inputs(tasks: list[TaskData], names: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Inputs every probe task has an answer for (examples and eval rows, first answer wins),
    in the first task's file order, with each task's answer."""
    answers: dict[str, dict[str, str]] = {}
    for name in names:
        task = next(t for t in tasks if t.spec.name == name)
        for row in [*task.examples, *task.eval_items]:
            answers.setdefault(row.input, {}).setdefault(name, row.output)
    return [(x, a) for x, a in answers.items() if len(a) == len(names)]


def _check_probe_inputs(spec: Pilot, tasks: list[TaskData], doc: YamlDocument) -> None:
    if spec.probe is None:
        return
    problem, field = None, "tasks"
    unknown_tasks = [t for t in spec.probe.tasks if t not in {t.name for t in spec.tasks}]
    unknown_models = [m for m in spec.probe.models or [] if m not in {m.name for m in spec.models}]
    shared = [] if unknown_tasks else probe_inputs(tasks, spec.probe.tasks)
    queries = [x for x, a in shared if len(set(a.values())) == len(a)]
    needed = spec.probe.examples_per_prompt + 1
    if unknown_tasks or unknown_models:
        field = "tasks" if unknown_tasks else "models"
        problem = f"{', '.join(unknown_tasks or unknown_models)}: not defined under {field}:"
    elif len(shared) < needed:
        problem = f"{len(shared)} inputs are shared by all probe tasks; examples_per_prompt + 1 = {needed} needed"
    elif not queries:
        problem = "no shared input has a different answer for every probe task (needed for queries)"
    if problem:
        loc = ("probe", field)
        raise RoiError([Problem(problem, str(doc.path), doc.line_of(loc), format_loc(loc))])


def _check_key_transport(spec: Pilot, doc: YamlDocument) -> None:
    """A model with a key and a plain-http `base_url` to another machine is refused (roi/endpoints.py)."""
    problems = []
    for i, model in enumerate(spec.models):
        problem = key_transport_problem(model.base_url) if model.api_key_env and model.base_url else None
        if problem is not None:
            loc = ("models", i, "base_url")
            problems.append(Problem(problem, str(doc.path), doc.line_of(loc), format_loc(loc)))
    if problems:
        raise RoiError(problems)
