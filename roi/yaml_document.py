"""A YAML file read defensively, with the line of any field found on demand.

A pilot file may be hostile or just huge. Before anything is built from it: the file must be a
regular file of at most `MAX_FILE_BYTES`; it is parsed into its node graph (libyaml's `CSafeLoader`
where PyYAML has it, else the pure-Python `SafeLoader`; safe loading only, so no tags run code); and
the graph is measured as it would be once every alias is expanded, counting each shared node once
(a memo by node). A document that would expand past `MAX_NODES` nodes (an alias bomb, "billion
laughs"), that uses more than `MAX_ALIASES` aliases or that refers to itself is refused at once. Only
then are Python objects built (aliases stay shared: nothing is copied).

Line numbers are not indexed in advance: `line_of(loc)` walks the node graph along one field path
when an error needs it, so the cost is that of the path, whatever the aliases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from roi.errors import Problem, RoiError
from roi.files import FileRefused, read_regular_file

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NODES = 1_000_000  # after alias expansion; a pilot with 100,000 inline eval rows has about 500,000
MAX_ALIASES = 10_000

Loc = tuple[str | int, ...]
SafeLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    text: str
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Loc) -> int | None:
        """The 1-based line of the field at `loc` (or of its nearest ancestor present in the file)."""
        node = self.root
        line = None if node is None else node.start_mark.line + 1
        for part in loc:
            node, found = (None, None) if node is None else _child(node, part)
            if found is None:
                break
            line = found
        return line


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, int | None]:
    """The node under `node` at `part`, and the line of its key (mappings)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value, key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        child: yaml.Node = node.value[part]
        return child, child.start_mark.line + 1
    return None, None


def read_yaml(path: Path) -> YamlDocument:
    """Read, measure and load the YAML file at `path`. Raises `RoiError` (file and line) on any problem."""
    shown = str(path)
    try:
        raw = read_regular_file(path, MAX_FILE_BYTES)
    except FileRefused as refused:
        raise RoiError([Problem(str(refused), shown)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RoiError([Problem(f"not UTF-8 text (byte {err.start})", shown)]) from None
    loader = SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_size(root, shown)
        data = None if root is None else loader.construct_document(root)
    except yaml.constructor.ConstructorError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        message = f"YAML tags are not allowed (safe loading only): {err.problem}"
        raise RoiError([Problem(message, shown, line)]) from None
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        raise RoiError([Problem(f"YAML syntax error: {err.problem}", shown, line)]) from None
    except yaml.YAMLError as err:
        raise RoiError([Problem(f"YAML error: {err}", shown)]) from None
    except RecursionError:  # the pure-Python loader on very deep nesting (libyaml stops at 1000 levels)
        raise RoiError([Problem("YAML nested too deeply", shown)]) from None
    finally:
        loader.dispose()
    return YamlDocument(path, text, data, root)


def _check_size(root: yaml.Node, shown: str) -> None:
    """Refuse a node graph that refers to itself or would pass the limits once its aliases are expanded.

    Post-order walk of the collections with an explicit stack (scalars count 1 where they stand);
    `size` memoises each collection's expanded size, so one shared by many aliases is measured once
    and a bomb is refused after a walk of its real size. `open_nodes` holds the collections being
    measured, the ancestors of the one in hand: meeting one again is a cycle."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    aliases = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            open_nodes.discard(key)
            total = 1 + sum(size.get(id(c), 1) for c in _collections(node, all_children=True))
            if total > MAX_NODES:
                _refuse(f"the document expands to more than {MAX_NODES:,} nodes (an alias bomb?)", shown, node)
            size[key] = total
        elif key in open_nodes:
            _refuse("an alias refers to a node that contains it (a recursive alias)", shown, node)
        elif key in size:
            aliases += 1
            if aliases > MAX_ALIASES:
                _refuse(f"more than {MAX_ALIASES:,} aliases (*name)", shown, node)
        else:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in _collections(node))


def _collections(node: yaml.Node, all_children: bool = False) -> list[yaml.Node]:
    """The children of `node` that are collections (or, with `all_children`, every child)."""
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        return []
    return children if all_children else [c for c in children if not isinstance(c, yaml.ScalarNode)]


def _refuse(message: str, shown: str, node: yaml.Node) -> None:
    raise RoiError([Problem(f"refused: {message}", shown, node.start_mark.line + 1)])
