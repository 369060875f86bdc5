"""Hostile and huge YAML: limits checked before anything is built, libyaml where present, line numbers
found along one path on demand (never by expanding aliases)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from roi import yaml_document
from roi.errors import RoiError
from roi.yaml_document import MAX_NODES, read_yaml


def bomb(levels: int, width: int = 9) -> str:
    """Nested anchors, each level a list of `width` aliases to the one before ("billion laughs")."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def refusal(path: Path) -> str:
    with pytest.raises(RoiError) as refused:
        read_yaml(path)
    (problem,) = refused.value.problems
    assert problem.file == str(path)
    return problem.message


def test_libyaml_is_used_where_present() -> None:
    assert yaml.__with_libyaml__ and yaml_document.SafeLoader is yaml.CSafeLoader


@pytest.mark.parametrize("levels", [7, 9, 30])
def test_an_alias_bomb_is_refused_by_the_node_limit(tmp_path: Path, levels: int) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(levels), encoding="utf-8")
    assert 9**levels > MAX_NODES
    assert "expands to more than 1,000,000 nodes" in refusal(path)


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n", encoding="utf-8")
    assert "recursive alias" in refusal(path)


def test_too_many_aliases_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_document, "MAX_ALIASES", 5)
    path = tmp_path / "aliases.yaml"
    path.write_text("x: &x [1]\nys: [" + ", ".join(["*x"] * 6) + "]\n", encoding="utf-8")
    assert "more than 5 aliases" in refusal(path)


def test_a_file_past_the_size_cap_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_document, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 1000 + "\n", encoding="utf-8")
    assert "the limit is 1,000" in refusal(path)


def test_special_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    assert "named pipe" in refusal(fifo)
    device = tmp_path / "zero.yaml"
    device.symlink_to("/dev/zero")
    assert "is a device" in refusal(device)
    assert "is a directory" in refusal(tmp_path)
    assert "file not found" in refusal(tmp_path / "missing.yaml")


def test_shared_anchors_load_as_shared_objects(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {x: 1}\nuses: [*b, *b, *b]\n", encoding="utf-8")
    doc = read_yaml(path)
    assert doc.data["uses"] == [{"x": 1}] * 3
    assert all(u is doc.data["base"] for u in doc.data["uses"])  # aliases are not copied


def test_line_of_follows_one_path(tmp_path: Path) -> None:
    path = tmp_path / "lines.yaml"
    path.write_text("pilot: x\nmodels:\n  - name: a\n    backend: openai\n  - name: b\ntasks: []\n", encoding="utf-8")
    doc = read_yaml(path)
    assert doc.line_of(()) == 1
    assert doc.line_of(("models", 1, "name")) == 5
    assert doc.line_of(("models", 0, "backend")) == 4
    assert doc.line_of(("models", 0, "missing")) == 3  # the nearest ancestor present
    assert doc.line_of(("tasks", 3)) == 6


def test_line_of_inside_an_alias_bomb_is_immediate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_document, "MAX_NODES", 10**12)  # let a 9-level bomb through to look up a line
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(9), encoding="utf-8")
    doc = read_yaml(path)
    assert doc.line_of(("a9", 8, 8, 8, 8, 8, 8, 8, 8, 8)) == 1
