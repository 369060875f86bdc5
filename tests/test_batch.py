"""Batch jobs (roi/backends/batch.py): the input file, results by custom_id, per-call failures and the
batch discount; a provider's control plane played by a loopback server whose jobs run on the real vLLM
server; a run killed after submission resumed without a second submission; and vLLM's own batch
runner on this machine."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from roi import store
from roi.backends import GenerationRequest, create_backend
from roi.backends.batch import BatchBackend, MemoryJournal, batch_input, line_error
from roi.costs import call_cost_usd
from roi.pilot import BatchRunner, LoadedPilot, ModelSpec, load_pilot
from roi.planning import plan_pilot
from roi.prompts import build_calls
from roi.runner import Progress, RunOptions, RunResult, run_pilot
from tests.api_runs import agreement, answers, calls, demo_pilot_file, of_model, with_models
from tests.servers import VllmServer, vllm_python
from tests.servers.batch_api import BatchApi
from tests.servers.vllm import ENGINE_ENVIRONMENT, ENGINE_SETTINGS, SERVED_NAME

from .conftest import PILOTS, REPO

LIMIT = 2
PRICE = {"input_per_1m": 1.0, "cached_input_per_1m": 0.25, "output_per_1m": 4.0, "batch_discount": 0.5}
# Parsed answers of a batch job identical to the same calls sent one by one to the same server: the
# same weights and tokens, but vLLM's bfloat16 sums depend on which requests share a step.
AGREEMENT_FLOOR = 0.80


def batch_model(name: str, base_url: str | None = None, **settings: Any) -> ModelSpec:
    settings = {"endpoint": "completions", "price": PRICE, "batch": True, **settings}
    return ModelSpec(name=name, backend="openai", model=SERVED_NAME, base_url=base_url, **settings)


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BatchBackend, "poll_first_s", 0.2)
    monkeypatch.setattr(BatchBackend, "poll_max_s", 1.0)


# ---------------------------------------------------------------- without a server


def test_input_file_has_one_post_per_call_keyed_by_call() -> None:
    spec = batch_model("m", "http://127.0.0.1:9/v1")
    requests = [GenerationRequest("m/single:capital:1", "Give the capital.\n", "Japan ->", 8, ("\n",))]
    (line,) = [json.loads(x) for x in batch_input(spec, requests).splitlines()]
    assert line == {
        "custom_id": "m/single:capital:1",
        "method": "POST",
        "url": "/v1/completions",
        "body": {"model": SERVED_NAME, "max_tokens": 8, "temperature": 0.0, "stop": ["\n"],
                 "prompt": "Give the capital.\nJapan ->"},
    }  # fmt: skip
    chat = batch_model("m", "http://127.0.0.1:9/v1", endpoint="chat")
    (line,) = [json.loads(x) for x in batch_input(chat, requests).splitlines()]
    assert line["url"] == "/v1/chat/completions"
    assert line["body"]["messages"] == [{"role": "user", "content": "Give the capital.\nJapan ->"}]


def test_failed_lines_read_like_direct_failures() -> None:
    line = {"custom_id": "k", "response": {"status_code": 500, "body": {"error": {"message": "boom  now"}}}}
    assert line_error(line) == "BatchRequestError (HTTP 500): boom now"
    assert line_error({"custom_id": "k", "response": None, "error": {"message": "expired"}}) == (
        "BatchRequestError: expired"
    )


def test_batch_discount_applies_to_batch_calls_only() -> None:
    tokens: dict[str, Any] = {
        "machine_s": 1.0,
        "prompt_tokens": 1000,
        "output_tokens": 100,
        "cached_prompt_tokens": 400,
    }
    full = (600 * 1.0 + 400 * 0.25 + 100 * 4.0) / 1e6
    assert call_cost_usd(batch_model("m", "http://x/v1"), **tokens) == pytest.approx(full * 0.5)
    direct = ModelSpec(name="m", backend="openai", model="x", base_url="http://x/v1", price=PRICE)
    assert call_cost_usd(direct, **tokens) == pytest.approx(full)


def test_batch_fields_are_checked() -> None:
    from pydantic import ValidationError

    runner = BatchRunner(python="python", model_path="embedded")
    with pytest.raises(ValidationError, match="only apply to backend 'openai'"):
        ModelSpec(name="m", backend="transformers", model="embedded", batch=True)
    with pytest.raises(ValidationError, match="set batch: true"):
        ModelSpec(name="m", backend="openai", model="x", endpoint="chat", batch_runner=runner)
    with pytest.raises(ValidationError, match="serves only the chat endpoint"):
        ModelSpec(name="m", backend="openai", model="x", endpoint="completions", batch=True, batch_runner=runner)
    local = ModelSpec(name="m", backend="openai", model="x", endpoint="chat", batch=True, batch_runner=runner)
    assert local.base_url is None  # a runner here needs no endpoint


def test_store_keeps_batch_jobs(tmp_path: Path) -> None:
    db = store.connect(tmp_path / "roi.db")
    store.insert_run(db, run_id="r", pilot="p", pilot_path="p.yaml", pilot_sha256="s", pilot_json="{}",
                     started_at="2024-01-01T00:00:00+00:00", item_limit=None, environment={})  # fmt: skip
    jobs = store.BatchJobs(db, "r", "m", tmp_path / "batches")
    first = jobs.uploaded(["m/a", "m/b"], "sha", "file-1")
    assert first.batch_id is None and first.keys == ("m/a", "m/b")
    submitted = jobs.submitted(first.number, "batch-1")
    assert submitted.batch_id == "batch-1" and submitted.submitted_at is not None
    assert store.BatchJobs(db, "r", "other", tmp_path).open_batches() == []
    assert jobs.open_batches() == [submitted]
    jobs.collected(first.number)
    assert jobs.open_batches() == []


# ---------------------------------------------------------------- a provider's control plane on loopback


@pytest.fixture(scope="module")
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


@pytest.fixture(scope="module")
def direct(demo: LoadedPilot, vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The calls sent one by one to the vLLM server: what each batch job is compared with."""
    spec = ModelSpec(name="vllm", backend="openai", model=SERVED_NAME, base_url=vllm_server.base_url,
                     endpoint="completions", max_concurrency=4)  # fmt: skip
    return run_pilot(with_models(demo, [spec]), RunOptions(out_dir=tmp_path_factory.mktemp("direct"), limit=LIMIT))


@pytest.mark.server
@pytest.mark.vllm
def test_batch_api_run_priced_with_failures_stored_and_resumed(
    demo: LoadedPilot, vllm_server: VllmServer, direct: RunResult, tmp_path: Path
) -> None:
    seen: list[Progress] = []
    with BatchApi(upstream_port=vllm_server.port) as api:
        pilot = with_models(demo, [batch_model("batched", api.base_url)])
        keys = [f"batched/{c.call_key}" for c in build_calls(pilot, LIMIT)]
        api.fail_custom_ids.add(keys[0])
        options = RunOptions(out_dir=tmp_path, limit=LIMIT, on_progress=lambda p: seen.append(dataclasses.replace(p)))
        first = run_pilot(pilot, options)
        assert (api.uploads, api.created) == (1, 1)
        stored = calls(first).set_index("call_id")
        assert len(stored) == len(keys) and stored["error"].notna().sum() == 1
        assert stored.loc[keys[0], "error"].startswith("BatchRequestError (HTTP 500)")
        assert any(p.note.startswith("batch ") for p in seen)  # the bar showed the job while it ran
        ok = stored[stored["error"].isna()]
        full = (ok["prompt_tokens"] - ok["cached_prompt_tokens"]) * 1.0 + ok["cached_prompt_tokens"] * 0.25
        full += ok["output_tokens"] * 4.0
        assert ok["cost_usd"].to_numpy() == pytest.approx((full * 0.5 / 1e6).to_numpy(), rel=1e-12)
        assert (ok["latency_s"] > 0).all()  # the job's turnaround
        api.fail_custom_ids.clear()
        second = run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=LIMIT, resume=first.run_id))
        assert (api.uploads, api.created) == (2, 2)  # the failed call, in a job of its own
    final = calls(second)
    assert final["error"].isna().all() and len(final) == len(keys)
    share = agreement(answers(direct, "vllm"), answers(second, "batched"))
    print(f"batch job vs direct calls on vLLM: {share:.3f} identical parsed answers")
    assert share >= AGREEMENT_FLOOR
    direct_calls, batched = of_model(calls(direct), "vllm"), of_model(final, "batched")
    assert (batched["prompt_tokens"] == direct_calls.loc[batched.index, "prompt_tokens"]).all()
    # roi plan: one job holds every call, so the time is a job's turnaround; cost at the discount
    planned = {r.mode: r for r in plan_pilot(pilot, LIMIT, history=tmp_path / "roi.db").rows}
    single = final[final["mode"] == "single"]
    assert planned["single"].time_s == pytest.approx(single["latency_s"].mean())
    undiscounted = with_models(demo, [batch_model("batched", api.base_url, batch=False)])
    full_price = {r.mode: r for r in plan_pilot(undiscounted, LIMIT).rows}
    assert planned["single"].cost_usd == pytest.approx(0.5 * (full_price["single"].cost_usd or 0))


@pytest.mark.server
@pytest.mark.vllm
def test_run_deadline_leaves_the_job_open_for_the_next_run(
    demo: LoadedPilot, vllm_server: VllmServer, tmp_path: Path
) -> None:
    with BatchApi(upstream_port=vllm_server.port) as api:
        api.hold()
        pilot = with_models(demo, [batch_model("batched", api.base_url)], mixed=False)
        first = run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=1, max_minutes=0.05))
        assert first.stopped is not None and calls(first).empty
        api.release.set()
        second = run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=1, resume=first.run_id))
    assert (api.uploads, api.created) == (1, 1)
    done = calls(second)
    assert len(done) == 4 and done["error"].isna().all()


@pytest.mark.server
@pytest.mark.vllm
def test_job_created_before_its_id_was_written_is_found(
    demo: LoadedPilot, vllm_server: VllmServer, tmp_path: Path
) -> None:
    """A process killed between creating the job and writing its id: the next one finds the job by its
    input file instead of creating another."""
    with BatchApi(upstream_port=vllm_server.port) as api:
        spec = batch_model("batched", api.base_url)
        pilot = with_models(demo, [spec], mixed=False)
        requests = [c.request(f"batched/{c.call_key}") for c in build_calls(pilot, 1)]
        journal = MemoryJournal()
        backend = create_backend(spec, PILOTS, lambda s: None)
        assert isinstance(backend, BatchBackend)
        backend.attach(journal, lambda p: None)
        path = journal.folder / "in.jsonl"
        path.write_text(batch_input(spec, requests))
        from roi.backends.batch_provider import ProviderBatches

        service = ProviderBatches(spec, None)
        record = journal.uploaded([r.key for r in requests], "sha", service.upload(path))
        service.create(record.input_ref, "/v1/completions", {})  # ... and the process died here
        results = list(backend.generate(requests))
        backend.close()
    assert api.created == 1 and api.uploads == 1
    assert len(results) == len(requests) and all(r.error is None for r in results)


# ---------------------------------------------------------------- killed after submission


def submitted_job(db_path: Path) -> str | None:
    if not db_path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT batch_id FROM batch_jobs WHERE batch_id IS NOT NULL").fetchone()
    except sqlite3.OperationalError:  # the store is still being created
        return None
    return str(row[0]) if row else None


@pytest.mark.server
@pytest.mark.vllm
def test_run_killed_after_submission_resumes_without_submitting_again(vllm_server: VllmServer, tmp_path: Path) -> None:
    with BatchApi(upstream_port=vllm_server.port) as api:
        api.hold()  # the job waits, as a provider's queue would
        model = batch_model("batched", api.base_url).model_dump(exclude_defaults=True)
        pilot_path = demo_pilot_file(tmp_path, [model], name="batch-killed")
        out = tmp_path / "reports"
        command = [sys.executable, "-m", "roi", "run", str(pilot_path), "--out", str(out), "--limit", str(LIMIT)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        roi = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while (job := submitted_job(out / "roi.db")) is None:
            assert time.monotonic() < deadline and roi.poll() is None, roi.stdout.read() if roi.stdout else ""
            time.sleep(0.1)
        roi.send_signal(signal.SIGKILL)
        roi.wait(timeout=30)
        assert (api.uploads, api.created) == (1, 1) and api.jobs[job].status == "in_progress"
        api.release.set()
        result = run_pilot(load_pilot(pilot_path), RunOptions(out_dir=out, limit=LIMIT))
    assert (api.uploads, api.created) == (1, 1)  # the resumed run polled the job it had submitted
    done = calls(result)
    assert len(done) == len(build_calls(load_pilot(pilot_path), LIMIT)) and done["error"].isna().all()
    jobs = store.batch_jobs_frame(store.connect(out / "roi.db"), result.run_id)
    assert list(jobs["batch_id"]) == [job] and jobs["collected_at"].notna().all()


# ---------------------------------------------------------------- vLLM's batch runner on this machine


@pytest.mark.server
@pytest.mark.vllm
def test_vllm_batch_runner_runs_the_pilot(
    demo: LoadedPilot, direct: RunResult, embedded_model_dir: Path, tmp_path: Path
) -> None:
    runner = BatchRunner(
        python=str(vllm_python()), model_path=str(embedded_model_dir), args=ENGINE_SETTINGS, env=ENGINE_ENVIRONMENT
    )
    spec = batch_model("vllm-runner", endpoint="chat", batch_runner=runner)
    result = run_pilot(with_models(demo, [spec]), RunOptions(out_dir=tmp_path, limit=LIMIT, status=print))
    done = calls(result)
    assert done["error"].isna().all() and len(done) == len(calls(direct))
    assert (done["cost_usd"] > 0).all()
    # The raw chat template sends the prompt as it is: the tokens a completion of it counts.
    batched, one_by_one = of_model(done, "vllm-runner"), of_model(calls(direct), "vllm")
    assert (batched["prompt_tokens"] == one_by_one.loc[batched.index, "prompt_tokens"]).all()
    share = agreement(answers(direct, "vllm"), answers(result, "vllm-runner"))
    print(f"vLLM batch runner vs direct calls: {share:.3f} identical parsed answers")
    assert share >= AGREEMENT_FLOOR
    assert list((tmp_path / "batches" / result.run_id).glob("*.out-*.jsonl"))
