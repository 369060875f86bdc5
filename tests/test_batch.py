"""Batch jobs (roi/backends/batch.py): the input file, results by custom_id, per-call failures and the
batch discount; a provider's control plane played by a loopback server whose jobs run on the real vLLM
server; runs killed after submission (also in `--max-cost`'s second job) and resumes asking for only
some calls, none submitted or paid twice; unreadable output and a forgotten job; and vLLM's own batch
runner on this machine, stopped with a killed roi.

Every wait has a deadline: runs get `max_minutes`, and a `roi` subprocess is killed before its output
is read."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from roi import store
from roi.backends import BatchJournal, GenerationRequest, GenerationResult, create_backend
from roi.backends.batch import BatchBackend, MemoryJournal, batch_input, line_error
from roi.backends.batch_vllm import PYTHON_VARIABLE, missing_runner
from roi.costs import call_cost_usd
from roi.pilot import BatchRunner, LoadedPilot, ModelSpec, load_pilot
from roi.planning import plan_pilot
from roi.prompts import build_calls
from roi.runner import Progress, RunOptions, RunResult, run_pilot
from tests.api_runs import agreement, answers, calls, demo_pilot_file, of_model, with_models
from tests.servers import VllmServer, vllm_python
from tests.servers.batch_api import BatchApi
from tests.servers.process import group_members, wait_group_gone
from tests.servers.vllm import ENGINE_ENVIRONMENT, ENGINE_SETTINGS, SERVED_NAME

from .conftest import PILOTS, REPO

LIMIT = 2
PRICE = {"input_per_1m": 1.0, "cached_input_per_1m": 0.25, "output_per_1m": 4.0, "batch_discount": 0.5}
# Parsed answers of a batch job identical to the same calls sent one by one to the same server: the
# same weights and tokens, but vLLM's bfloat16 sums depend on which requests share a step.
AGREEMENT_FLOOR = 0.80
MAX_MINUTES = 15.0  # no batch test waits longer for a job
T = TypeVar("T")


def batch_model(name: str, base_url: str | None = None, **settings: Any) -> ModelSpec:
    settings = {"endpoint": "completions", "price": PRICE, "batch": True, **settings}
    return ModelSpec(name=name, backend="openai", model=SERVED_NAME, base_url=base_url, **settings)


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BatchBackend, "poll_first_s", 0.2)
    monkeypatch.setattr(BatchBackend, "poll_max_s", 1.0)


def options(out_dir: Path, **settings: Any) -> RunOptions:
    return RunOptions(out_dir=out_dir, **{"limit": LIMIT, "max_minutes": MAX_MINUTES, **settings})


def discounted_cost(calls: Any) -> Any:
    """What calls cost at PRICE less the batch discount, from their stored tokens."""
    full = (calls["prompt_tokens"] - calls["cached_prompt_tokens"]) * 1.0 + calls["cached_prompt_tokens"] * 0.25
    return ((full + calls["output_tokens"] * 4.0) * 0.5 / 1e6).to_numpy()


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

    runner = BatchRunner(model_path="embedded")
    with pytest.raises(ValidationError, match="only apply to backend 'openai'"):
        ModelSpec(name="m", backend="transformers", model="embedded", batch=True)
    with pytest.raises(ValidationError, match="set batch: true"):
        ModelSpec(name="m", backend="openai", model="x", endpoint="chat", batch_runner=runner)
    with pytest.raises(ValidationError, match="serves only the chat endpoint"):
        ModelSpec(name="m", backend="openai", model="x", endpoint="completions", batch=True, batch_runner=runner)
    with pytest.raises(ValidationError, match="base_url does not apply"):
        ModelSpec(name="m", backend="openai", model="x", base_url="http://x/v1", batch=True, batch_runner=runner)
    local = ModelSpec(name="m", backend="openai", model="x", endpoint="chat", batch=True, batch_runner=runner)
    assert local.base_url is None  # a runner here needs no endpoint


def test_a_batch_model_priced_without_its_discount_is_warned_of(tmp_path: Path) -> None:
    priced = batch_model("batched", "http://127.0.0.1:9/v1").model_dump(exclude_defaults=True)
    full = {**priced, "name": "full", "price": {k: v for k, v in PRICE.items() if k != "batch_discount"}}
    pilot = load_pilot(demo_pilot_file(tmp_path, [priced, full]))
    named = [w for w in pilot.warnings if w.name == "batch-without-discount"]
    assert len(named) == 1 and "model 'full'" in named[0].message and named[0].line is not None


def test_a_pilot_cannot_choose_what_the_batch_runner_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interpreter is the operator's (ROI_VLLM_PYTHON), and the pilot's flags and variables are engine
    settings only: nothing that loads code or changes which program runs."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="python"):
        BatchRunner.model_validate({"model_path": "embedded", "python": "/bin/sh"})
    for args in (["--trust-remote-code"], ["--dtype", "bfloat16", "--worker-cls=evil.Worker"], ["-tp", "2"]):
        with pytest.raises(ValidationError, match="cannot be set here"):
            BatchRunner(model_path="embedded", args=args)
    for variable in ("LD_PRELOAD", "PYTHONPATH", "VLLM_PLUGINS"):
        with pytest.raises(ValidationError, match=f"{variable} cannot be set here"):
            BatchRunner(model_path="embedded", env={variable: "x"})
    allowed = BatchRunner(model_path="embedded", args=["--dtype", "bfloat16", "--max-model-len=2048"])
    spec = ModelSpec(name="m", backend="openai", model="x", endpoint="chat", batch=True, batch_runner=allowed)
    monkeypatch.delenv(PYTHON_VARIABLE, raising=False)
    assert f"needs {PYTHON_VARIABLE}" in (missing_runner(spec, tmp_path) or "")
    monkeypatch.setenv(PYTHON_VARIABLE, "venv/bin/python")
    assert "not an absolute path" in (missing_runner(spec, tmp_path) or "")
    monkeypatch.setenv(PYTHON_VARIABLE, str(tmp_path / "none"))
    assert "does not exist" in (missing_runner(spec, tmp_path) or "")
    monkeypatch.setenv(PYTHON_VARIABLE, sys.executable)
    assert missing_runner(spec, tmp_path) is None


def test_the_runner_supervisor_ends_its_group_when_roi_is_killed(tmp_path: Path) -> None:
    """A stand-in for roi starts a stand-in runner (which starts a stand-in engine) the way roi starts
    vLLM's, then is SIGKILLed: the supervisor is told by the kernel and ends the runner and the engine."""
    pid_file = tmp_path / "group"
    runner = "import subprocess, time; subprocess.Popen(['sleep', '600']); time.sleep(600)"
    fake_roi = (
        "import os, pathlib, subprocess, sys, time\n"
        "from roi.backends.batch_vllm import supervised\n"
        "child = subprocess.Popen(supervised(sys.executable, '-c', sys.argv[2]), start_new_session=True)\n"
        "pathlib.Path(sys.argv[1] + '.new').write_text(str(child.pid))\n"
        "os.replace(sys.argv[1] + '.new', sys.argv[1])\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    roi = subprocess.Popen([sys.executable, "-c", fake_roi, str(pid_file), runner], env=env)
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.exists() and len(group_members(group := int(pid_file.read_text()))) == 3):
            assert roi.poll() is None and time.monotonic() < deadline, "the stand-ins did not start"
            time.sleep(0.1)
    finally:
        roi.kill()
        roi.wait(timeout=30)
    assert wait_group_gone(group, 60.0) == []


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
    assert jobs.finished_keys() == set()
    for key, error in (("m/a", None), ("m/b", "BatchRequestError (HTTP 500): boom")):
        store.record_call(db, "r", stored_call(key, error), [])
    assert jobs.finished_keys() == {"m/a"}  # a failed call is not finished: a resume sends it again
    jobs.collected(first.number)
    assert jobs.open_batches() == []


def stored_call(key: str, error: str | None = None) -> store.CallRow:
    model, _, _ = key.partition("/")
    return store.CallRow(
        call_id=key, model=model, mode="single", prompt="", raw_output=None if error else " x", prompt_tokens=1,
        cached_prompt_tokens=0, output_tokens=1, latency_s=1.0, backoff_s=0.0, retries=0, cost_usd=None, n_items=1,
        error=error, finished_at="2024-01-01T00:00:00+00:00",
    )  # fmt: skip


# ---------------------------------------------------------------- a provider's control plane on loopback


@pytest.fixture(scope="module")
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


@pytest.fixture(scope="module")
def direct(demo: LoadedPilot, vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The calls sent one by one to the vLLM server: what each batch job is compared with."""
    spec = ModelSpec(name="vllm", backend="openai", model=SERVED_NAME, base_url=vllm_server.base_url,
                     endpoint="completions", max_concurrency=4)  # fmt: skip
    return run_pilot(with_models(demo, [spec]), options(tmp_path_factory.mktemp("direct")))


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
        first = run_pilot(pilot, options(tmp_path, on_progress=lambda p: seen.append(dataclasses.replace(p))))
        assert (api.uploads, api.created) == (1, 1)
        stored = calls(first).set_index("call_id")
        assert len(stored) == len(keys) and stored["error"].notna().sum() == 1
        assert stored.loc[keys[0], "error"].startswith("BatchRequestError (HTTP 500)")
        assert any(p.note.startswith("batch ") for p in seen)  # the bar showed the job while it ran
        ok = stored[stored["error"].isna()]
        assert ok["cost_usd"].to_numpy() == pytest.approx(discounted_cost(ok), rel=1e-12)
        assert (ok["latency_s"] > 0).all()  # the job's turnaround
        api.fail_custom_ids.clear()
        second = run_pilot(pilot, options(tmp_path, resume=first.run_id))
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
        first = run_pilot(pilot, options(tmp_path, limit=1, max_minutes=0.05))
        assert first.stopped is not None and calls(first).empty
        api.release.set()
        second = run_pilot(pilot, options(tmp_path, limit=1, resume=first.run_id))
    assert (api.uploads, api.created) == (1, 1)
    done = calls(second)
    assert len(done) == 4 and done["error"].isna().all()


@pytest.mark.server
@pytest.mark.vllm
def test_unreadable_output_lines_are_failed_calls_and_resent(
    demo: LoadedPilot, vllm_server: VllmServer, tmp_path: Path
) -> None:
    """A line cut short, and a line that is JSON but no result, are not trusted: the call they should
    have answered is stored as missing, and --resume sends it again instead of crashing on the file."""
    with BatchApi(upstream_port=vllm_server.port) as api:
        pilot = with_models(demo, [batch_model("batched", api.base_url)], mixed=False)
        key = f"batched/{build_calls(pilot, 1)[0].call_key}"
        api.garble_custom_ids.add(key)
        first = run_pilot(pilot, options(tmp_path, limit=1))
        stored = calls(first).set_index("call_id")
        assert stored["error"].notna().sum() == 1
        # the line cut short and the line that is no result
        assert stored.loc[key, "error"].startswith("BatchMissing: not in the batch's output (2 unreadable lines in ")
        api.garble_custom_ids.clear()
        second = run_pilot(pilot, options(tmp_path, limit=1, resume=first.run_id))
    assert second.run_id == first.run_id and calls(second)["error"].isna().all()
    assert (api.uploads, api.created) == (2, 2)


@pytest.mark.server
@pytest.mark.vllm
def test_a_job_the_service_forgot_is_sent_again_once(
    demo: LoadedPilot, vllm_server: VllmServer, tmp_path: Path
) -> None:
    """The job and its input file answer 404 (expired, or deleted at the provider): the resumed run
    sends the calls again in one new job instead of failing on every resume."""
    with BatchApi(upstream_port=vllm_server.port) as api:
        api.hold()
        pilot = with_models(demo, [batch_model("batched", api.base_url)], mixed=False)
        first = run_pilot(pilot, options(tmp_path, limit=1, max_minutes=0.05))
        (job,) = list(api.jobs)
        api.forget(job)
        api.release.set()
        second = run_pilot(pilot, options(tmp_path, limit=1, resume=first.run_id))
    assert (api.uploads, api.created) == (2, 2)
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
        backend = attached_backend(spec, journal)
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


def attached_backend(spec: ModelSpec, journal: BatchJournal, wait_s: float = 60.0 * MAX_MINUTES) -> BatchBackend:
    backend = create_backend(spec, PILOTS, lambda s: None)
    assert isinstance(backend, BatchBackend)
    backend.attach(journal, lambda p: None)
    backend.stop_at(time.monotonic() + wait_s)
    return backend


# ---------------------------------------------------------------- resumes that ask for some calls only


@pytest.mark.server
@pytest.mark.vllm
def test_a_job_is_read_for_the_calls_asked_and_kept_open_for_the_rest(
    demo: LoadedPilot, vllm_server: VllmServer, tmp_path: Path
) -> None:
    """The order of a resumed run that had a failed call and then a second job (the measured plan's):
    the next process asks first for the failed call alone, then for the second job's calls a few at a
    time (as `--max-cost` does before it knows how the model counts tokens). The held job is neither
    closed unread nor sent again: one new job, for the failed call only."""
    with BatchApi(upstream_port=vllm_server.port) as api:
        spec = batch_model("batched", api.base_url)
        requests = [c.request(f"batched/{c.call_key}") for c in build_calls(with_models(demo, [spec], mixed=False), 1)]
        calls_first, plan = requests[:2], requests[2:]
        db = store.connect(tmp_path / "roi.db")
        store.insert_run(db, run_id="r", pilot="p", pilot_path="p.yaml", pilot_sha256="s", pilot_json="{}",
                         started_at="2024-01-01T00:00:00+00:00", item_limit=None, environment={})  # fmt: skip
        journal = store.BatchJobs(db, "r", "batched", tmp_path / "batches")
        api.fail_custom_ids.add(calls_first[0].key)
        first_process = attached_backend(spec, journal)
        store_results(db, first_process.generate(calls_first))
        api.hold()
        first_process.stop_at(time.monotonic() + 1.0)  # stopped while the second job is held
        assert list(first_process.generate(plan)) == []
        first_process.close()
        assert (api.uploads, api.created) == (2, 2) and len(journal.open_batches()) == 1
        api.fail_custom_ids.clear()
        api.release.set()
        next_process = attached_backend(spec, journal)
        store_results(db, next_process.generate(calls_first[:1]))
        assert (api.uploads, api.created) == (3, 3)  # the failed call alone; the held job stays open
        for part in (plan[:1], plan[1:]):
            store_results(db, next_process.generate(part))
        next_process.close()
    assert (api.uploads, api.created) == (3, 3)
    assert journal.open_batches() == [] and journal.finished_keys() == {r.key for r in requests}


def store_results(db: sqlite3.Connection, results: Iterable[GenerationResult]) -> None:
    for result in results:
        row = dataclasses.replace(stored_call(result.key, result.error), raw_output=result.text)
        store.record_call(db, "r", row, [])


# ---------------------------------------------------------------- killed after submission


@dataclass
class RoiProcess:
    """`roi run` as its own process, its output in a file (a pipe nobody reads could stall it)."""

    process: subprocess.Popen[bytes]
    output: Path

    @classmethod
    def start(cls, pilot_path: Path, out: Path, *arguments: str) -> RoiProcess:
        command = [sys.executable, "-m", "roi", "run", str(pilot_path), "--out", str(out), *arguments]
        output = pilot_path.with_suffix(".output.txt")
        with output.open("wb") as log:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            return cls(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), output)

    def wait_for(self, found: Callable[[], T | None], deadline_s: float = 120.0) -> T:
        """What `found` returns once it returns something while roi runs; if roi ends first or the
        deadline passes, roi is killed and the test fails with its output."""
        deadline = time.monotonic() + deadline_s
        while (value := found()) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                text = self.output.read_text(errors="replace")[-3000:]
                pytest.fail(f"roi exited ({self.process.returncode}) or ran out of time first:\n{text}")
            time.sleep(0.1)
        return value

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def submitted_jobs(db_path: Path) -> list[str]:
    if not db_path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT batch_id FROM batch_jobs WHERE batch_id IS NOT NULL ORDER BY number").fetchall()
    except sqlite3.OperationalError:  # the store is still being created
        return []
    return [str(r[0]) for r in rows]


def jobs_submitted(db_path: Path, count: int) -> Callable[[], list[str] | None]:
    return lambda: jobs if len(jobs := submitted_jobs(db_path)) >= count else None


@pytest.mark.server
@pytest.mark.vllm
def test_run_killed_after_submission_resumes_without_submitting_again(vllm_server: VllmServer, tmp_path: Path) -> None:
    with BatchApi(upstream_port=vllm_server.port) as api:
        api.hold()  # the job waits, as a provider's queue would
        model = batch_model("batched", api.base_url).model_dump(exclude_defaults=True)
        pilot_path = demo_pilot_file(tmp_path, [model], name="batch-killed")
        out = tmp_path / "reports"
        roi = RoiProcess.start(pilot_path, out, "--limit", str(LIMIT))
        (job,) = roi.wait_for(jobs_submitted(out / "roi.db", 1))
        roi.kill()
        assert (api.uploads, api.created) == (1, 1) and api.jobs[job].status == "in_progress"
        api.release.set()
        result = run_pilot(load_pilot(pilot_path), options(out))
    assert (api.uploads, api.created) == (1, 1)  # the resumed run polled the job it had submitted
    done = calls(result)
    assert len(done) == len(build_calls(load_pilot(pilot_path), LIMIT)) and done["error"].isna().all()
    jobs = store.batch_jobs_frame(store.connect(out / "roi.db"), result.run_id)
    assert list(jobs["batch_id"]) == [job] and jobs["collected_at"].notna().all()


@pytest.mark.server
@pytest.mark.vllm
def test_max_cost_run_killed_in_its_second_job_resumes_it(vllm_server: VllmServer, tmp_path: Path) -> None:
    """`--max-cost` sends `max_concurrency` calls first, then the rest in a second job. Killed while that
    job runs, the resumed run (whose budget again starts with a few calls) reads all of them from it."""
    with BatchApi(upstream_port=vllm_server.port) as api:
        api.hold(after=1)  # the first job runs; the second waits
        model = batch_model("batched", api.base_url, max_concurrency=2).model_dump(exclude_defaults=True)
        pilot_path = demo_pilot_file(tmp_path, [model], name="batch-max-cost", mixed=False)
        out = tmp_path / "reports"
        roi = RoiProcess.start(pilot_path, out, "--limit", str(LIMIT), "--max-cost", "100")
        roi.wait_for(jobs_submitted(out / "roi.db", 2))
        roi.kill()
        assert (api.uploads, api.created) == (2, 2)
        api.release.set()
        result = run_pilot(load_pilot(pilot_path), options(out, max_cost_usd=100.0))
    assert (api.uploads, api.created) == (2, 2)
    done = calls(result)
    assert len(done) == len(build_calls(load_pilot(pilot_path), LIMIT)) and done["error"].isna().all()
    assert done["cost_usd"].to_numpy() == pytest.approx(discounted_cost(done), rel=1e-12)


# ---------------------------------------------------------------- vLLM's batch runner on this machine


def runner_model(name: str, model_dir: Path) -> ModelSpec:
    runner = BatchRunner(model_path=str(model_dir), args=ENGINE_SETTINGS, env=ENGINE_ENVIRONMENT)
    return batch_model(name, endpoint="chat", batch_runner=runner)


@pytest.mark.server
@pytest.mark.vllm
def test_vllm_batch_runner_runs_the_pilot(
    demo: LoadedPilot, direct: RunResult, embedded_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PYTHON_VARIABLE, str(vllm_python()))
    spec = runner_model("vllm-runner", embedded_model_dir)
    result = run_pilot(with_models(demo, [spec]), options(tmp_path, status=print))
    done = calls(result)
    assert done["error"].isna().all() and len(done) == len(calls(direct))
    assert done["cost_usd"].to_numpy() == pytest.approx(discounted_cost(done), rel=1e-12)
    # The raw chat template sends the prompt as it is: the tokens a completion of it counts.
    batched, one_by_one = of_model(done, "vllm-runner"), of_model(calls(direct), "vllm")
    assert (batched["prompt_tokens"] == one_by_one.loc[batched.index, "prompt_tokens"]).all()
    share = agreement(answers(direct, "vllm"), answers(result, "vllm-runner"))
    print(f"vLLM batch runner vs direct calls: {share:.3f} identical parsed answers")
    assert share >= AGREEMENT_FLOOR
    assert list((tmp_path / "batches" / result.run_id).glob("*.out-*.jsonl"))


@pytest.mark.server
@pytest.mark.vllm
def test_a_killed_roi_leaves_no_batch_runner_behind(
    embedded_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL gives roi no chance to stop its runner: the kernel tells the runner's supervisor, which
    stops the runner and the engine processes it started (they would outlive the runner itself)."""
    from tests.conftest import require_vllm

    require_vllm()
    monkeypatch.setenv(PYTHON_VARIABLE, str(vllm_python()))
    model = runner_model("vllm-runner", embedded_model_dir).model_dump(exclude_defaults=True)
    pilot_path = demo_pilot_file(tmp_path, [model], name="runner-killed", mixed=False)
    out = tmp_path / "reports"
    roi = RoiProcess.start(pilot_path, out, "--limit", "1")
    (job,) = roi.wait_for(jobs_submitted(out / "roi.db", 1))
    group = int(job.rpartition("-")[2])  # vllm-run-batch-PID: the supervisor leads the group
    # the supervisor, the runner and what the runner started (vLLM's engine core and its helpers)
    started = roi.wait_for(lambda: members if len(members := group_members(group)) > 2 else None, 900.0)
    print(f"runner and engine processes: {started}")
    roi.kill()
    assert wait_group_gone(group, 120.0) == []
