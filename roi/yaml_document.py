"""A YAML file read defensively, with the line of any field found on demand.

A pilot file may be hostile or just huge. The file must be a regular file of at most `MAX_FILE_BYTES`.
It is then read as a stream of parser events (libyaml's `CSafeLoader` where PyYAML has it, else the
pure-Python `SafeLoader`; safe loading only, so no tags run code) and the Python objects are built from
the events directly: no node graph is composed, so memory is that of the data, and the limits are
checked as each event arrives, before anything is built after it. Every alias counts the size of what
it refers to (measured once, when its anchor closes), so the running count is the document's size once
every alias is expanded: past `MAX_NODES` nodes (a flat list of a million numbers, or an alias bomb,
"billion laughs"), past `MAX_ALIASES` aliases to collections, or an alias inside what it refers to,
the file is refused with its line at once. Aliases stay shared: nothing is copied.

Line numbers cost one number per item: each list keeps its items' lines, each mapping its keys'
lines, by the object itself, so `line_of(loc)` follows one field path, whatever the aliases.
"""

from __future__ import annotations

import inspect
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from roi.errors import Problem, RoiError
from roi.files import FileRefused, read_regular_file

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NODES = 1_000_000  # after alias expansion; a pilot with 100,000 inline eval rows has about 500,000
MAX_ALIASES = 10_000

Loc = tuple[str | int, ...]
SafeLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MERGE = "tag:yaml.org,2002:merge"  # `<<: *defaults`
_PLAIN_TAGS = (None, "!")  # no tag, or the non-specific one: resolved from the value, as the loader does
_ABSENT = object()  # no key waiting, or no such key
_MERGE_KEY = object()  # the key waiting is `<<`
_COLLECTION_TAGS = {yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG}


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    text: str = field(repr=False)
    data: Any = field(repr=False)  # shared through aliases: printed whole, a bomb would never end
    root_line: int | None = None
    lines: dict[int, Any] = field(default_factory=dict, repr=False)  # id(list): array of lines; id(dict): {key: line}

    def line_of(self, loc: Loc) -> int | None:
        """The 1-based line of the field at `loc` (or of its nearest ancestor present in the file)."""
        value, line = self.data, self.root_line
        for part in loc:
            found = self.lines.get(id(value))
            if isinstance(value, list) and isinstance(part, int) and found is not None and 0 <= part < len(value):
                value, line = value[part], found[part]
            elif isinstance(value, dict) and found is not None:
                key = _key(value, part)
                if key is _ABSENT:
                    break
                value, line = value[key], found[key]
            else:
                break
        return line


def _key(mapping: dict[Any, Any], part: str | int) -> Any:
    """The key of `mapping` that `part` (a field name or index as an error path gives it) names."""
    if part in mapping:
        return part
    return next((k for k in mapping if str(k) == str(part)), _ABSENT)


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
        builder = _Builder(loader, shown)
        builder.read()
    except yaml.constructor.ConstructorError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        raise RoiError([Problem(f"YAML error: {err.problem}", shown, line)]) from None
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        raise RoiError([Problem(f"YAML syntax error: {err.problem}", shown, line)]) from None
    except yaml.YAMLError as err:
        raise RoiError([Problem(f"YAML error: {err}", shown)]) from None
    finally:
        loader.dispose()
    return YamlDocument(path, text, builder.data, builder.root_line, builder.lines)


class _Open:
    """A list or mapping whose events are still arriving."""

    __slots__ = ("anchor", "key", "key_line", "line", "lines", "merges", "start", "value")

    def __init__(self, value: list[Any] | dict[Any, Any], anchor: str | None, line: int, start: int) -> None:
        self.value = value
        self.anchor = anchor
        self.line = line
        self.start = start  # the expanded-node count before it: its size is the count at its end minus this
        self.lines: Any = array("L") if isinstance(value, list) else {}
        self.key: Any = _ABSENT  # a mapping's key waiting for its value
        self.key_line = 0
        self.merges: list[dict[Any, Any]] = []  # mappings `<<` merges in, first listed first


class _Builder:
    """Python objects from the loader's events, counting expanded nodes and aliases as they come."""

    def __init__(self, loader: Any, shown: str) -> None:
        self.loader = loader
        self.shown = shown
        self.data: Any = None
        self.root_line: int | None = None
        self.lines: dict[int, Any] = {}
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Any, int] | None] = {}  # None: its collection is still open
        self.nodes = 0  # expanded: an alias counts what it refers to
        self.aliases = 0
        self.seen_alias = False

    def read(self) -> None:
        get = self.loader.get_event
        get()  # stream start
        if isinstance(self.loader.peek_event(), yaml.StreamEndEvent):
            return
        get()  # document start
        while not isinstance(event := get(), yaml.DocumentEndEvent):
            self._event(event)
        if not isinstance(extra := get(), yaml.StreamEndEvent):
            raise yaml.composer.ComposerError(None, None, "expected a single document in the stream", extra.start_mark)

    def _event(self, event: Any) -> None:
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            self._alias(event, line)
        elif isinstance(event, yaml.ScalarEvent):
            self._count(1, line)
            value, tag = self._scalar(event)
            if event.anchor is not None:
                self._anchor(event.anchor, line, (value, 1))
            self._add(value, line, merge=tag == _MERGE)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if event.tag not in _PLAIN_TAGS and event.tag not in _COLLECTION_TAGS:
                self._fail(f"YAML tags are not allowed (safe loading only): {event.tag}", line)
            self._count(1, line)
            if event.anchor is not None:
                self._anchor(event.anchor, line, None)
            empty: list[Any] | dict[Any, Any] = [] if isinstance(event, yaml.SequenceStartEvent) else {}
            self.stack.append(_Open(empty, event.anchor, line, self.nodes - 1))
            self.root_line = line if self.root_line is None else self.root_line
        else:  # the end of a list or mapping
            self._close()

    def _scalar(self, event: Any) -> tuple[Any, str]:
        tag = event.tag
        if tag in _PLAIN_TAGS:
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE:
            return event.value, tag
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        construct = self.loader.yaml_constructors.get(tag)
        if construct is None or tag in _COLLECTION_TAGS:
            self._fail(f"YAML tags are not allowed (safe loading only): {tag}", event.start_mark.line + 1)
        try:
            value = construct(self.loader, node)
        except (ValueError, TypeError):  # e.g. `!!int ten`
            self._fail(
                f"YAML error: {event.value!r} is not a valid {tag.rsplit(':', 1)[-1]}", event.start_mark.line + 1
            )
        if inspect.isgenerator(value):
            self._fail(f"YAML tags are not allowed (safe loading only): {tag}", event.start_mark.line + 1)
        return value, tag

    def _alias(self, event: Any, line: int) -> None:
        if event.anchor not in self.anchors:
            self._fail(f"YAML syntax error: found undefined alias {event.anchor!r}", line)
        target = self.anchors[event.anchor]
        if target is None:
            self._fail("refused: an alias refers to a node that contains it (a recursive alias)", line)
        value, size = target
        self.seen_alias = True
        if isinstance(value, (list, dict)):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                self._fail(f"refused: more than {MAX_ALIASES:,} aliases (*name)", line)
        self._count(size, line)
        self._add(value, line)

    def _anchor(self, name: str, line: int, target: tuple[Any, int] | None) -> None:
        if name in self.anchors:
            self._fail(f"YAML syntax error: the anchor &{name} is defined twice", line)
        self.anchors[name] = target

    def _count(self, nodes: int, line: int) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            what = "the document expands to" if self.seen_alias else "the file holds"
            bomb = " (an alias bomb?)" if self.seen_alias else ""
            self._fail(f"refused: {what} more than {MAX_NODES:,} nodes{bomb}", line)

    def _close(self) -> None:
        done = self.stack.pop()
        value: Any = done.value
        lines = done.lines
        if done.merges:  # merged keys first, the mapping's own keys win; earlier merges win over later
            merged: dict[Any, Any] = {}
            merged_lines: dict[Any, int] = {}
            for source in reversed(done.merges):
                merged.update(source)
                merged_lines.update(self.lines.get(id(source), {}))
            value, lines = merged | value, merged_lines | lines
        self.lines[id(value)] = lines
        if done.anchor is not None:
            self.anchors[done.anchor] = (value, self.nodes - done.start)
        self._add(value, done.line)

    def _add(self, value: Any, line: int, merge: bool = False) -> None:
        if not self.stack:
            self.data = value
            self.root_line = line if self.root_line is None else self.root_line
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
            top.lines.append(line)
        elif top.key is _ABSENT:
            if merge:
                top.key, top.key_line = _MERGE_KEY, line
                return
            try:
                hash(value)
            except TypeError:
                self._fail("YAML error: a mapping key must be a plain value, not a list or mapping", line)
            top.key, top.key_line = value, line
        else:
            if top.key is _MERGE_KEY:
                self._merge(top, value, top.key_line)
            else:
                top.value[top.key] = value
                top.lines[top.key] = top.key_line
            top.key = _ABSENT

    def _merge(self, top: _Open, value: Any, line: int) -> None:
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(s, dict) for s in sources):
            self._fail("YAML error: `<<` merges a mapping or a list of mappings", line)
        top.merges.extend(sources)

    def _fail(self, message: str, line: int) -> NoReturn:
        raise RoiError([Problem(message, self.shown, line)])
