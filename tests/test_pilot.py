"""Loading and validating pilot files: every bad input names file, line and field; nothing is written."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roi.cli import app
from roi.errors import RoiError
from roi.pilot import load_pilot

from .conftest import PILOTS

VALID = """\
pilot: tiny
business_unit: Test unit
owner: someone@example.com
models:
  - name: local
    backend: transformers
    model: embedded
    cost: {usd_per_hour: 1.0}
tasks:
  - name: upper
    instruction: Upper-case the word.
    examples: upper.csv
    eval:
      - {input: cat, output: CAT}
      - {input: dog, output: DOG}
    scorer: {type: exact, case_sensitive: true}
  - name: double
    instruction: Double the number.
    examples: double.jsonl
    eval: double.jsonl
    scorer: {type: numeric, tolerance: 0.5}
modes:
  single: {shots: 2}
  mixed: {shots_per_task: 1, tasks_per_call: all}
seed: 3
"""
UPPER_CSV = "input,output\nhat,HAT\nsun,SUN\n"
DOUBLE_JSONL = '{"input": "2", "output": "4"}\n{"input": "5", "output": "10"}\n'

WriteFile = Callable[[str, str], Path]


@pytest.fixture
def pilot_dir(write_file: WriteFile) -> Path:
    write_file("upper.csv", UPPER_CSV)
    write_file("double.jsonl", DOUBLE_JSONL)
    return write_file("pilot.yaml", VALID).parent


def problems_of(path: Path) -> str:
    with pytest.raises(RoiError) as caught:
        load_pilot(path)
    return str(caught.value)


def test_valid_pilot_loads_with_its_data(pilot_dir: Path) -> None:
    pilot = load_pilot(pilot_dir / "pilot.yaml")
    assert pilot.name == "tiny"
    upper, double = pilot.tasks
    assert [(e.input, e.output) for e in upper.examples] == [("hat", "HAT"), ("sun", "SUN")]
    assert [e.id for e in upper.eval_items] == ["1", "2"]
    assert double.eval_items[1].output == "10"
    assert pilot.spec.modes.mixed.tasks_per_call == "all"
    assert pilot.spec.gates.max_accuracy_drop == 0.05  # documented default
    assert len(pilot.sha256) == 64


@pytest.mark.parametrize("example", ["superposition-demo.yaml", "support-triage.yaml"])
def test_example_pilots_are_valid(example: str) -> None:
    pilot = load_pilot(PILOTS / example)
    assert all(len(t.eval_items) >= 30 for t in pilot.tasks)


# Each case: a replacement applied to the valid pilot text, then what the message must contain.
BAD_PILOTS = [
    ("unknown key", ("seed: 3", "seed: 3\ncolour: blue"), ["pilot.yaml:26", "colour", "unknown key"]),
    ("missing key", ("owner: someone@example.com\n", ""), ["pilot.yaml", "owner", "required key is missing"]),
    ("wrong type", ("shots: 2", "shots: two"), ["pilot.yaml:23", "modes.single.shots", "integer"]),
    ("out of range", ("usd_per_hour: 1.0", "usd_per_hour: -1"), ["pilot.yaml:8", "models[0].cost.usd_per_hour"]),
    ("fraction out of range", ("seed: 3", "gates: {max_accuracy_drop: 1.5}"), ["gates.max_accuracy_drop", "1"]),
    ("duplicate task", ("name: double", "name: upper"), ["pilot.yaml:17 tasks[1].name", "'upper' is used twice"]),
    ("unknown scorer", ("type: numeric, tolerance: 0.5", "type: fuzzy"), ["tasks[1].scorer", "pilot.yaml:21"]),
    ("unknown backend", ("backend: transformers", "backend: magic"), ["models[0].backend", "pilot.yaml:6"]),
    (
        "openai field on local model",
        ("model: embedded", "model: embedded\n    base_url: http://x"),
        ["models[0]", "only apply to backend 'openai'"],
    ),
    (
        "local-only field on an API model",
        (
            "backend: transformers\n    model: embedded\n    cost: {usd_per_hour: 1.0}",
            "backend: openai\n    model: m\n    base_url: http://x\n    max_batch: 4",
        ),
        ["models[0]", "max_batch applies to local models"],
    ),
    ("max_batch out of range", ("model: embedded", "model: embedded\n    max_batch: 0"), ["models[0].max_batch"]),
    (
        "precision on an API model",
        (
            "backend: transformers\n    model: embedded\n    cost: {usd_per_hour: 1.0}",
            "backend: openai\n    model: m\n    base_url: http://x\n    precision: bfloat16",
        ),
        ["models[0]", "precision applies to local models"],
    ),
    ("unknown precision", ("model: embedded", "model: embedded\n    precision: int8"), ["models[0].precision"]),
    ("tasks_per_call too small", ("tasks_per_call: all", "tasks_per_call: 1"), ["tasks_per_call", "at least 2"]),
    ("too many shots", ("shots: 2", "shots: 5"), ["tasks[0].examples", "5 shots", "only 2 examples"]),
    (
        "missing data file",
        ("examples: upper.csv", "examples: nothere.csv"),
        ["nothere.csv", "not found", "tasks[0].examples", "pilot.yaml:12"],
    ),
    ("data file is a directory", ("examples: upper.csv", "examples: subdir"), ["is a directory"]),
    (
        "empty inline eval",
        ("eval:\n      - {input: cat, output: CAT}\n      - {input: dog, output: DOG}", "eval: []"),
        ["tasks[0].eval", "empty"],
    ),
    ("bad data extension", ("examples: upper.csv", "examples: upper.txt"), ["unsupported data file type"]),
    # The analyst's mistakes: each named at its line and field, with a hint where one helps.
    ("misspelt key", ("shots: 2", "shot: 2"), ["pilot.yaml:23 modes.single.shot", "did you mean 'shots'?"]),
    ("misspelt nested key", ("usd_per_hour: 1.0", "usd_per_huor: 1.0"), ["did you mean 'usd_per_hour'?"]),
    (
        "misspelt backend",
        ("backend: transformers", "backend: transformer"),
        ["pilot.yaml:6 models[0].backend: 'transformer' is not one of: transformers, openai", "did you mean"],
    ),
    ("misspelt scorer", ("type: numeric,", "type: numerc,"), ["unknown type 'numerc' (did you mean 'numeric'?)"]),
    (
        "more tasks per call than tasks",
        ("tasks_per_call: all", "tasks_per_call: 5"),
        ["pilot.yaml:24 modes.mixed.tasks_per_call", "5 tasks per mixed call, but the pilot has 2 tasks"],
    ),
    (
        "mixed mode with one task",
        (VALID[VALID.index("  - name: double") : VALID.index("modes:")], ""),
        ["pilot.yaml:19 modes.mixed", "mixed mode needs at least 2 tasks"],
    ),
    (
        "label outside the choices",
        ("scorer: {type: exact, case_sensitive: true}", "scorer: {type: choice, choices: [HAT, CAT, DOG]}"),
        ["pilot.yaml:12 tasks[0].examples", "upper.csv: line 3: label 'SUN' is not one of the scorer's choices"],
    ),
    (
        "inline label typo",
        ("scorer: {type: exact, case_sensitive: true}", "scorer: {type: choice, choices: [CAT, DOGS, HAT, SUN]}"),
        ["tasks[0].eval", "pilot.yaml: line 15: label 'DOG'", "(did you mean 'DOGS'?)"],
    ),
]


@pytest.mark.parametrize(("label", "change", "expected"), BAD_PILOTS, ids=[c[0] for c in BAD_PILOTS])
def test_bad_pilot_is_located(pilot_dir: Path, label: str, change: tuple[str, str], expected: list[str]) -> None:
    (pilot_dir / "subdir").mkdir(exist_ok=True)
    (pilot_dir / "upper.txt").write_text(UPPER_CSV)
    path = pilot_dir / "pilot.yaml"
    assert change[0] in VALID, label
    path.write_text(VALID.replace(change[0], change[1], 1))
    message = problems_of(path)
    for part in expected:
        assert part in message, f"{label}: {part!r} not in {message!r}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("pilot: [unclosed\n", "YAML syntax error"),
        ("pilot: !!python/object:os.system {}\n", "YAML tags are not allowed"),
        ("pilot: x\nowner: !custom y\n", "pilot.yaml:2"),
    ],
)
def test_bad_yaml(write_file: WriteFile, text: str, expected: str) -> None:
    assert expected in problems_of(write_file("pilot.yaml", text))


def test_not_utf8_and_missing_and_directory(tmp_path: Path) -> None:
    latin = tmp_path / "pilot.yaml"
    latin.write_bytes("pilot: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in problems_of(latin)
    assert "file not found" in problems_of(tmp_path / "absent.yaml")
    assert "is a directory" in problems_of(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable(pilot_dir: Path) -> None:
    path = pilot_dir / "pilot.yaml"
    path.chmod(0)
    assert "permission denied" in problems_of(path)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("upper.csv", "text,label\nhat,HAT\n", "missing column(s) input, output"),
        ("upper.csv", "input,output\n", "no data rows"),
        ("upper.csv", "input,output\nhat,HAT,extra\n", "upper.csv:2: more fields than the header"),
        ("upper.csv", "input,output\nhat\n", "upper.csv:2: fewer fields than the header"),
        ("upper.csv", 'input,output\n"hat,HAT\n', "malformed CSV"),
        ("upper.csv", "input,output\nhat,\n", "upper.csv:2: 'output' must be a non-empty string"),
        ("double.jsonl", '{"input": "2", "output": "4"}\n{"input": 3\n', "double.jsonl:2: malformed JSON"),
        ("double.jsonl", '["2", "4"]\n', "double.jsonl:1: each line must be a JSON object"),
        ("double.jsonl", '{"input": "2", "output": "4"}\n' + "[" * 100_000 + "\n", "double.jsonl:2: JSON nested too"),
        ("double.jsonl", '{"input": "2"}\n', "double.jsonl:1: missing key(s) output"),
        (
            "double.jsonl",
            '{"id": 1, "input": "2", "output": "4"}\n{"id": 1, "input": "3", "output": "6"}\n',
            "duplicate id '1'",
        ),
    ],
)
def test_bad_data_files(pilot_dir: Path, name: str, content: str, expected: str) -> None:
    (pilot_dir / name).write_text(content)
    message = problems_of(pilot_dir / "pilot.yaml")
    assert expected in message
    assert "tasks[" in message  # the pilot field that names the file


def test_data_file_not_utf8(pilot_dir: Path) -> None:
    (pilot_dir / "upper.csv").write_bytes(b"input,output\ncaf\xe9,CAF\xc9\n")
    assert "upper.csv: not UTF-8" in problems_of(pilot_dir / "pilot.yaml")


def test_cli_validate_exit_codes_and_no_files_written(pilot_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(pilot_dir / "pilot.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "2 tasks" in ok.output
    bad = pilot_dir / "pilot.yaml"
    bad.write_text(VALID.replace("seed: 3", "seed: three"))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    out_dir = tmp_path / "out"
    for args in (["validate", str(bad)], ["run", str(bad), "--out", str(out_dir)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0
        assert isinstance(result.exception, RoiError)
    assert not out_dir.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_special_data_files_are_refused_unread(pilot_dir: Path) -> None:
    (pilot_dir / "upper.csv").unlink()
    os.mkfifo(pilot_dir / "upper.csv")  # reading it would block until a writer came
    message = problems_of(pilot_dir / "pilot.yaml")
    assert "pilot.yaml:12 tasks[0].examples" in message and "upper.csv: is a named pipe (FIFO)" in message
    (pilot_dir / "upper.csv").unlink()
    (pilot_dir / "upper.csv").symlink_to("/dev/zero")  # would fill memory
    assert "upper.csv: is a device, not a regular file" in problems_of(pilot_dir / "pilot.yaml")


def test_data_files_past_the_size_cap_are_refused(pilot_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from roi import datasets

    monkeypatch.setattr(datasets, "MAX_DATA_BYTES", 20)
    assert "upper.csv: is 29 bytes; the limit is 20" in problems_of(pilot_dir / "pilot.yaml")


def test_an_alias_bomb_is_refused_before_validation(write_file: WriteFile) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = write_file("pilot.yaml", VALID + "\n".join(levels) + "\n")
    assert "expands to more than 1,000,000 nodes (an alias bomb?)" in problems_of(path)


def test_schema_and_data_file_mistakes_in_one_round(pilot_dir: Path) -> None:
    """A schema error does not hide the data files' mistakes, and one bad file does not hide another."""
    (pilot_dir / "upper.csv").write_text("text,label\nhat,HAT\n")
    (pilot_dir / "double.jsonl").write_text('{"input": "2"}\n')
    both = problems_of(pilot_dir / "pilot.yaml")
    assert "missing column(s) input, output" in both and "double.jsonl:1: missing key(s) output" in both
    (pilot_dir / "pilot.yaml").write_text(VALID.replace("seed: 3", "seed: three"))
    message = problems_of(pilot_dir / "pilot.yaml")
    assert "pilot.yaml:25 seed" in message
    assert "missing column(s) input, output" in message and "double.jsonl:1: missing key(s) output" in message
