"""Helpers and shared checks for the tests that run pilots through the openai backend against a real
server (llama.cpp in test_openai_backend.py, vLLM in test_vllm.py, batch jobs in test_batch.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from roi.backends import GenerationRequest, GenerationResult
from roi.backends.openai_backend import OpenAIBackend
from roi.pilot import LoadedPilot, ModelSpec
from roi.runner import Progress, RunOptions, RunResult, run_pilot
from tests.servers import Fault, FaultProxy

from .conftest import PILOTS

Answers = dict[tuple[str, str, str], str | None]
# One single-mode call of the demo pilot spoiled by each fault.
FAULT_TARGETS = {
    Fault.RATE_LIMIT: "single:capital:1",
    Fault.SERVER_ERROR: "single:upper:1",
    Fault.HANG: "single:number_en:1",
    Fault.DROP: "single:en_fr:1",
}


def with_models(pilot: LoadedPilot, models: list[ModelSpec], *, mixed: bool = True) -> LoadedPilot:
    # Two tasks per mixed call keeps the local model's mixed calls short on 2 CPU cores.
    mixed_mode = pilot.spec.modes.mixed.model_copy(update={"enabled": mixed, "tasks_per_call": 2})
    modes = pilot.spec.modes.model_copy(update={"mixed": mixed_mode})
    spec = pilot.spec.model_copy(update={"models": models, "modes": modes})
    return LoadedPilot(spec, pilot.path, pilot.sha256, pilot.tasks)


def demo_pilot_file(folder: Path, models: list[dict[str, Any]], name: str = "demo-copy", *, mixed: bool = True) -> Path:
    """The demo pilot with other models, written to `folder` (its data files named by absolute path),
    for tests that run `roi` as a separate process."""
    data = yaml.safe_load((PILOTS / "superposition-demo.yaml").read_text(encoding="utf-8"))
    data["pilot"], data["models"] = name, models
    data["modes"]["mixed"]["enabled"] = mixed
    for task in data["tasks"]:
        for key in ("examples", "eval"):
            task[key] = str((PILOTS / task[key]).resolve())
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def fast_backoff(spec: ModelSpec) -> OpenAIBackend:
    backend = OpenAIBackend(spec, PILOTS, lambda s: None)
    backend.backoff_base_s = 0.05  # keep the test short; Retry-After is still honoured in full
    return backend


def answers(result: RunResult, model: str) -> Answers:
    items = pd.read_sql_query(
        "SELECT mode, task, item_id, answer FROM items WHERE run_id = ? AND model = ?",
        sqlite3.connect(result.db_path),
        params=(result.run_id, model),
    )
    return {(r.mode, r.task, r.item_id): r.answer for r in items.itertuples()}


def calls(result: RunResult) -> pd.DataFrame:
    return pd.read_sql_query(
        "SELECT * FROM calls WHERE run_id = ?", sqlite3.connect(result.db_path), params=(result.run_id,)
    )


def of_model(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """The model's rows, indexed by the model-free call key (`single:capital:1`)."""
    rows = frame[frame["model"] == model]
    return rows.set_index(rows["call_id"].str.split("/", n=1).str[1])


def agreement(a: Answers, b: Answers) -> float:
    """Share of items with identical parsed answers (no answer from both counts as identical)."""
    assert a.keys() == b.keys()
    return sum(a[k] == b[k] for k in a) / len(a)


def checked_agreement(a: Answers, b: Answers, floor: float, label: str) -> float:
    share = agreement(a, b)
    print(f"agreement {label}: {share:.3f} on {len(b)} items")
    assert share >= floor
    return share


def body_marker(pilot: LoadedPilot, call_key: str) -> str:
    """Text only the request body of `call_key` contains (the JSON-escaped end of its prompt)."""
    from roi.prompts import build_calls

    prompts = {c.call_key: c.prompt for c in build_calls(pilot, 2)}
    marker = json.dumps(prompts[call_key][-60:])[1:-1]
    assert sum(marker in json.dumps(p) for p in prompts.values()) == 1
    return marker


@dataclass
class Recording:
    """The real backend, noting which calls the runner asked for."""

    inner: OpenAIBackend
    asked: list[str] = field(default_factory=list)

    @property
    def spec(self) -> ModelSpec:
        return self.inner.spec

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        self.asked += [r.key for r in requests]
        return self.inner.generate(requests)

    def count_tokens(self, text: str) -> int | None:
        return self.inner.count_tokens(text)

    def describe(self) -> dict[str, str]:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()


def run_through_faults(
    demo: LoadedPilot, upstream_port: int, spec_for: Callable[[str], ModelSpec], out_dir: Path, timeout_s: float
) -> RunResult:
    """The demo's single calls (2 items per task) through a proxy spoiling one call with each fault:
    every call ends well, each spoiled one after exactly one retry, with Retry-After honoured and kept
    out of latency, and the attempt that hung counted in it."""
    with FaultProxy(upstream_port=upstream_port, retry_after_s=1.0) as proxy:
        spec = spec_for(proxy.base_url)
        pilot = with_models(demo, [spec], mixed=False)
        for fault, key in FAULT_TARGETS.items():
            proxy.inject(fault, match=body_marker(pilot, key))
        result = run_pilot(pilot, RunOptions(out_dir=out_dir, limit=2, backends={spec.name: fast_backoff(spec)}))
    done = calls(result).set_index("call_id")
    assert len(done) == 4 * 2 and done["error"].isna().all()
    assert int(done["retries"].sum()) == 4 == sum(e.fault is not None for e in proxy.events)
    row = {fault: done.loc[f"{spec.name}/{key}"] for fault, key in FAULT_TARGETS.items()}
    assert all(r["retries"] == 1 for r in row.values())
    assert row[Fault.RATE_LIMIT]["backoff_s"] >= 1.0
    assert row[Fault.HANG]["latency_s"] >= timeout_s
    assert row[Fault.HANG]["backoff_s"] < timeout_s
    return result


def lose_endpoint_and_resume(
    pilot: LoadedPilot, spec: ModelSpec, out_dir: Path, lose: Callable[[], None], restore: Callable[[], None]
) -> None:
    """Lose the endpoint once three calls are stored (2 in flight at most): the calls left fail after
    their one retry and are counted; once restored, a resume repeats exactly those."""

    def lose_after_three(progress: Progress) -> None:
        if progress.done == 3:
            lose()

    options = RunOptions(
        out_dir=out_dir, limit=2, on_progress=lose_after_three, backends={spec.name: fast_backoff(spec)}
    )
    first = run_pilot(pilot, options)
    stored = calls(first)
    failed = set(stored.loc[stored["error"].notna(), "call_id"])
    assert len(stored) == 4 * 2 and len(failed) >= len(stored) - 3 - 2
    assert (stored.loc[stored["error"].notna(), "retries"] == 1).all()
    assert sum(m.failed_calls for m in first.summary.modes) == len(failed)
    restore()
    again = Recording(fast_backoff(spec))
    second = run_pilot(pilot, RunOptions(out_dir=out_dir, limit=2, resume=first.run_id, backends={spec.name: again}))
    assert set(again.asked) == failed
    final = calls(second)
    assert len(final) == len(stored) and final["error"].isna().all()
    assert second.run_id == first.run_id
