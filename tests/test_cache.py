"""The response cache: content-addressed keys, reuse with the original figures, the `reused` flag kept
out of live latency statistics, --fresh, and no caching of sampled (temperature > 0) calls."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from roi import cache, store
from roi.backends import GenerationRequest
from roi.pilot import LoadedPilot, ModelSpec, load_pilot
from roi.runner import RunOptions, run_pilot

from .conftest import PILOTS
from .fakes import FakeBackend


@pytest.fixture
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


def identity(spec: ModelSpec, base_dir: Path = PILOTS) -> cache.Identity:
    return cache.model_identity(spec, base_dir)


def test_key_covers_model_parameters_and_prompt_but_not_the_display_name(demo: LoadedPilot) -> None:
    spec = demo.spec.models[0]
    request = GenerationRequest("m/k", "prefix ", "suffix", 16, ("\n",))
    key = cache.cache_key(identity(spec), request)
    assert key is not None and len(key) == 64
    assert cache.cache_key(identity(spec.model_copy(update={"name": "renamed"})), request) == key
    assert cache.cache_key(identity(spec), GenerationRequest("other/key", "prefix ", "suffix", 16, ("\n",))) == key
    changed = [
        cache.cache_key(identity(spec.model_copy(update={"model": "other"})), request),
        cache.cache_key(identity(spec.model_copy(update={"dtype": "float32"})), request),
        cache.cache_key(identity(spec), GenerationRequest("m/k", "prefix ", "suffix!", 16, ("\n",))),
        cache.cache_key(identity(spec), GenerationRequest("m/k", "prefix", " suffix", 17, ("\n",))),
        cache.cache_key(identity(spec), GenerationRequest("m/k", "prefix ", "suffix", 16, ("\n", "Q:"))),
    ]
    assert key not in changed and len(set(changed)) == len(changed)


def test_sampling_is_never_cached(demo: LoadedPilot) -> None:
    request = GenerationRequest("m/k", "p", "s", 4, ())
    assert cache.cacheable(cache.GREEDY)
    assert not cache.cacheable(0.7)
    assert cache.cache_key(identity(demo.spec.models[0]), request, temperature=0.7) is None


def test_two_model_folders_of_one_name_never_share_answers(tmp_path: Path) -> None:
    spec = ModelSpec(name="tuned", backend="transformers", model="models/tuned")
    request = GenerationRequest("m/k", "p", "s", 4, ())
    for team, weights in (("team-a", b"weights A"), ("team-b", b"weights B")):
        folder = tmp_path / team / "models" / "tuned"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(weights)
    key_a = cache.cache_key(identity(spec, tmp_path / "team-a"), request)
    key_b = cache.cache_key(identity(spec, tmp_path / "team-b"), request)
    assert key_a != key_b  # same `model:` text, different folders
    weights = tmp_path / "team-a" / "models" / "tuned" / "model.safetensors"
    weights.write_bytes(b"weights A, retrained")  # replaced in place
    assert cache.cache_key(identity(spec, tmp_path / "team-a"), request) != key_a


def test_an_api_model_is_identified_by_the_endpoint_actually_called(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec(name="api", backend="openai", model="gpt-x", api_key_env="K")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    official = identity(spec)
    assert official["base_url"] == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "https://user:pw@gateway.example.com/v1")
    redirected = identity(spec)
    assert redirected["base_url"] == "https://gateway.example.com/v1"  # without credentials
    request = GenerationRequest("m/k", "p", "s", 4, ())
    assert cache.cache_key(official, request) != cache.cache_key(redirected, request)


def test_second_run_is_answered_from_the_cache_with_the_original_figures(demo: LoadedPilot, tmp_path: Path) -> None:
    spec = demo.spec.models[0]
    first_backend = FakeBackend(spec, demo)
    first = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=3, backends={"gemma-270m": first_backend}))
    second_backend = FakeBackend(spec, demo)
    second = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=3, backends={"gemma-270m": second_backend}))
    assert len(first_backend.seen) == 15 and second_backend.seen == []  # no call reached the model

    db = sqlite3.connect(tmp_path / "roi.db")
    cols = "call_id, raw_output, prompt_tokens, output_tokens, latency_s, cost_usd, cache_key"
    a = pd.read_sql_query(f"SELECT {cols}, reused FROM calls WHERE run_id = ?", db, params=(first.run_id,))
    b = pd.read_sql_query(f"SELECT {cols}, reused FROM calls WHERE run_id = ?", db, params=(second.run_id,))
    assert (a["reused"] == 0).all() and (b["reused"] == 1).all() and a["cache_key"].notna().all()
    merged = a.merge(b, on="call_id", suffixes=("_a", "_b"))
    assert len(merged) == 15
    for col in ("raw_output", "prompt_tokens", "output_tokens", "latency_s", "cost_usd", "cache_key"):
        assert (merged[f"{col}_a"] == merged[f"{col}_b"]).all(), col
    # Same answers, same accuracy; live latency statistics leave the reused calls out.
    acc = {(c.task, c.mode): c.accuracy.k for c in first.summary.cells}
    assert {(c.task, c.mode): c.accuracy.k for c in second.summary.cells} == acc
    assert all(c.latency_p50_s is not None for c in first.summary.cells)
    assert all(c.latency_p50_s is None and c.latency_max_s is None for c in second.summary.cells)
    assert all(m.latency_p95_s is None for m in second.summary.modes)
    assert "reused" in (second.run_dir / "calls.csv").read_text().splitlines()[0].split(",")
    latency = next(
        x for x in json.loads((second.run_dir / "report.json").read_text())["sections"] if x["id"] == "latency"
    )
    assert "15 of 15 calls were answered from the response cache" in latency["data"]["note"]


def test_fresh_bypasses_the_cache_and_a_cached_copy_is_never_a_source(demo: LoadedPilot, tmp_path: Path) -> None:
    spec = demo.spec.models[0]
    run_pilot(demo, RunOptions(out_dir=tmp_path, limit=2, backends={"gemma-270m": FakeBackend(spec, demo)}))
    run_pilot(demo, RunOptions(out_dir=tmp_path, limit=2, backends={"gemma-270m": FakeBackend(spec, demo)}))
    fresh_backend = FakeBackend(spec, demo)
    fresh = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=2, fresh=True, backends={"gemma-270m": fresh_backend}))
    assert len(fresh_backend.seen) == 10
    db = sqlite3.connect(tmp_path / "roi.db")
    assert db.execute("SELECT SUM(reused) FROM calls WHERE run_id = ?", (fresh.run_id,)).fetchone() == (0,)
    # The next cached run copies the newest live call (the fresh run's), not a cached copy.
    latest = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=2, backends={"gemma-270m": FakeBackend(spec, demo)}))
    key = db.execute("SELECT cache_key FROM calls WHERE run_id = ? LIMIT 1", (latest.run_id,)).fetchone()[0]
    row = store.response_cache_source(_rows(db), key)
    assert row is not None and row["run_id"] == fresh.run_id


def test_failed_calls_are_not_reused(demo: LoadedPilot, tmp_path: Path) -> None:
    spec = demo.spec.models[0]
    broken = FakeBackend(spec, demo, fail_keys={"gemma-270m/mixed:g0:0"})
    first = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=2, backends={"gemma-270m": broken}))
    assert first.summary.modes  # the failed call is stored with its error
    again = FakeBackend(spec, demo)
    run_pilot(demo, RunOptions(out_dir=tmp_path, limit=2, backends={"gemma-270m": again}))
    failed = [k for k in broken.seen if k in broken.fail_keys]
    assert failed and again.seen == failed  # only the failed call went to the model again


def _rows(db: sqlite3.Connection) -> sqlite3.Connection:
    db.row_factory = sqlite3.Row
    return db
