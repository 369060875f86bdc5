"""Hostile and huge YAML: limits checked as the file is read, libyaml where present, line numbers
found along one path on demand (never by expanding aliases)."""

from __future__ import annotations

import os
import tracemalloc
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
    assert doc.line_of(("a9", 8, 8, 8, 8, 8, 8, 8, 8, 8)) == 2  # where a1 writes its last *a0


def test_a_flat_list_is_refused_where_its_count_passes_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit holds while the file is read, not once everything is built: no alias, no bomb word."""
    monkeypatch.setattr(yaml_document, "MAX_NODES", 1000)
    path = tmp_path / "flat.yaml"
    path.write_text("items:\n" + "- 0\n" * 5000, encoding="utf-8")
    with pytest.raises(RoiError) as refused:
        read_yaml(path)
    (problem,) = refused.value.problems
    assert problem.message == "refused: the file holds more than 1,000 nodes" and problem.line == 999


def test_a_large_flat_list_keeps_no_node_graph(tmp_path: Path) -> None:
    """200,000 numbers: what is kept is the list and one line number per item, not a node per item
    (the composed node graph this file made before took about 70 MiB, traced the same way)."""
    path = tmp_path / "flat.yaml"
    path.write_text("[" + "0, " * 200_000 + "0]\n", encoding="utf-8")
    tracemalloc.start()
    try:
        doc = read_yaml(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(doc.data) == 200_001 and doc.line_of((200_000,)) == 1
    assert peak < 32 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def test_merge_keys_tags_and_anchors(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b\n  x: 1\n  y: 2\nuse:\n  <<: *b\n  y: 3\nboth:\n  <<: [{x: 4}, *b]\n", encoding="utf-8")
    doc = read_yaml(path)
    assert doc.data == yaml.safe_load(path.read_text()) == {
        "base": {"x": 1, "y": 2}, "use": {"x": 1, "y": 3}, "both": {"x": 4, "y": 2}}  # fmt: skip
    assert doc.line_of(("use", "y")) == 6 and doc.line_of(("use", "x")) == 2  # a merged key: where it is written
    for text, message in (
        ("a: !!python/object:os.system {}\n", "YAML tags are not allowed"),
        ("a: !!set {x, y}\n", "YAML tags are not allowed"),
        ("a: !!int ten\n", "'ten' is not a valid int"),
        ("a: &x 1\nb: &x 2\n", "the anchor &x is defined twice"),
        ("a: *nope\n", "found undefined alias 'nope'"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
        ("? [1]\n: 2\n", "a mapping key must be a plain value"),
    ):
        path.write_text(text, encoding="utf-8")
        assert message in refusal(path), text
