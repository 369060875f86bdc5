"""A pilot's settings as a run used them, and their fingerprint: what `compare` and the report's trend
check before they set two runs side by side.

The settings are the pilot as validated, less what only names or routes the work (business unit,
owner, description, report language, notifications, limits), plus a digest of each task's examples and
eval items, so that a few-shot file edited between two runs counts as a change although the pilot file
is the same. Two runs with one fingerprint asked the same questions the same way and were judged by the
same gates; otherwise `differences` says which settings moved.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from roi.pilot import LoadedPilot
from roi.redaction import safe_url

NOT_SETTINGS = ("pilot", "business_unit", "owner", "description", "report", "notify", "limits")
SHOWN = 8  # differences listed before "and N more"


def pilot_settings(pilot: LoadedPilot) -> dict[str, Any]:
    """The settings of `pilot` that shape its results, as plain JSON data."""
    spec = pilot.spec.model_dump(mode="json", exclude=set(NOT_SETTINGS))
    for model in spec["models"]:
        if model.get("base_url"):
            model["base_url"] = safe_url(model["base_url"])  # as stored everywhere: no secrets
    for task, data in zip(spec["tasks"], pilot.tasks, strict=True):
        task["examples"] = _digest(data.examples)
        task["eval"] = _digest(data.eval_items)
    return spec


def _digest(rows: Any) -> str:
    """`12 rows, sha256 1a2b3c4d…`: the rows' content, whatever file or inline list held them."""
    content = json.dumps([[r.id, r.input, r.output] for r in rows], ensure_ascii=False)
    return f"{len(rows)} rows, sha256 {hashlib.sha256(content.encode()).hexdigest()[:16]}"


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class SettingsDiff:
    """How the pilot's settings of one run differ from another's (`against`)."""

    against: str  # the other run's id
    known: bool  # False: one of the runs was stored before roi kept settings
    changes: list[str] = field(default_factory=list)  # `path: before → after`, empty when the same

    @property
    def same(self) -> bool:
        return self.known and not self.changes


def settings_diff(against: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> SettingsDiff:
    """Settings of run `against` (`before`) to this run's (`after`)."""
    return SettingsDiff(against, before is not None and after is not None, differences(before, after))


def differences(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """`modes.single.shots: 4 → 10`, one line per setting that differs (tasks and models by name)."""
    if before is None or after is None:
        return []
    lines: list[str] = []
    _walk(_by_name(before), _by_name(after), "", lines)
    if len(lines) > SHOWN:
        lines = [*lines[:SHOWN], f"and {len(lines) - SHOWN} more"]
    return lines


def _by_name(settings: dict[str, Any]) -> dict[str, Any]:
    """Tasks and models keyed by name, so a reordered list is not a change of every entry."""
    keyed = dict(settings)
    for key in ("tasks", "models"):
        if isinstance(keyed.get(key), list):
            keyed[key] = {str(entry.get("name")): entry for entry in keyed[key]}
    return keyed


def _walk(a: Any, b: Any, path: str, lines: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            _walk(a.get(key, _ABSENT), b.get(key, _ABSENT), f"{path}.{key}" if path else str(key), lines)
    elif a != b:
        lines.append(f"{path}: {_shown(a)} → {_shown(b)}")


class _Absent:
    def __repr__(self) -> str:
        return "(none)"


_ABSENT = _Absent()


def _shown(value: Any) -> str:
    if isinstance(value, _Absent):
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"
