"""The openai backend against a real llama.cpp server serving the embedded GGUF: both endpoints, agreement
with the transformers backend on the same weights, faults from a proxy on loopback, a killed server and
resume, and the API key kept out of everything written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from roi.backends.openai_backend import OpenAIBackend, as_continuation, retry_after_s
from roi.cli import app
from roi.pilot import LoadedPilot, ModelSpec, load_pilot
from roi.runner import RunOptions, RunResult, run_pilot
from tests.api_runs import (
    agreement,
    answers,
    calls,
    checked_agreement,
    lose_endpoint_and_resume,
    of_model,
    run_through_faults,
    with_models,
)
from tests.servers import Fault, FaultProxy, LlamaServer, embedded_gguf_path
from tests.test_hostile import api_pilot

from .conftest import PILOTS

pytestmark = pytest.mark.server

# Measured agreement of parsed answers between the transformers backend (de-quantised float32) and
# llama.cpp (Q4_K_M) on the demo pilot, completions endpoint: see BENCHMARKS.md.
AGREEMENT_FLOOR = 0.80
LIMIT = 2


def api_model(name: str, base_url: str, **settings: Any) -> ModelSpec:
    return ModelSpec(name=name, backend="openai", model="gemma-3-270m", base_url=base_url, **settings)


@pytest.fixture(scope="module")
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


@pytest.fixture(scope="module")
def three_way(demo: LoadedPilot, llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The demo pilot (LIMIT items per task, both modes) on the local model and both API endpoints."""
    models = [
        demo.spec.models[0],
        api_model("llama-completions", llama_server.base_url, endpoint="completions", max_concurrency=2),
        api_model("llama-chat", llama_server.base_url, endpoint="chat", max_concurrency=2),
    ]
    out = tmp_path_factory.mktemp("three-way")
    return run_pilot(with_models(demo, models), RunOptions(out_dir=out, limit=LIMIT))


def test_completions_agree_with_transformers(three_way: RunResult) -> None:
    api = answers(three_way, "llama-completions")
    assert len(api) == 2 * 4 * LIMIT
    checked_agreement(answers(three_way, "gemma-270m"), api, AGREEMENT_FLOOR, "transformers vs llama.cpp completions")
    done = calls(three_way)
    api_calls = of_model(done, "llama-completions")
    assert api_calls["error"].isna().all() and (api_calls["retries"] == 0).all()
    assert (api_calls["prompt_tokens"] > 0).all() and (api_calls["output_tokens"] > 0).all()
    # same weights, same tokenizer: the server's usage counts the prompt as the local tokenizer does
    local_calls = of_model(done, "gemma-270m")
    assert (local_calls["prompt_tokens"] == api_calls.loc[local_calls.index, "prompt_tokens"]).all()


def test_chat_endpoint_runs_the_pilot(three_way: RunResult) -> None:
    chat = of_model(calls(three_way), "llama-chat")
    assert len(chat) == 4 * LIMIT + 2 * LIMIT
    assert chat["error"].isna().all() and chat["raw_output"].notna().all()
    completions = of_model(calls(three_way), "llama-completions")
    # Gemma's chat template wraps the same prompt in turn markers: more prompt tokens than plain text.
    assert (chat["prompt_tokens"] > completions.loc[chat.index, "prompt_tokens"]).all()
    share = agreement(answers(three_way, "gemma-270m"), answers(three_way, "llama-chat"))
    print(f"agreement transformers vs llama.cpp chat: {share:.3f}")
    modes = {(m.model, m.mode): m for m in three_way.summary.modes}
    assert modes[("llama-chat", "single")].failed_calls == 0
    single_prompt_tokens = int(chat.loc[chat["mode"] == "single", "prompt_tokens"].sum())
    assert modes[("llama-chat", "single")].prompt_tokens == single_prompt_tokens


def test_faults_are_retried_counted_and_lose_nothing(
    demo: LoadedPilot, llama_server: LlamaServer, three_way: RunResult, tmp_path: Path
) -> None:
    timeout_s = 20.0  # the hang outlasts it; a real call on a loaded machine must not

    def spec_for(base_url: str) -> ModelSpec:
        return api_model(
            "llama-completions", base_url, endpoint="completions", max_concurrency=2, timeout_s=timeout_s, max_retries=3
        )

    result = run_through_faults(demo, llama_server.port, spec_for, tmp_path, timeout_s)
    clean = answers(three_way, "llama-completions")
    faulted = answers(result, "llama-completions")
    assert faulted and all(answer == clean[key] for key, answer in faulted.items())


def test_killed_server_fails_calls_and_resume_finishes_the_rest(demo: LoadedPilot, tmp_path: Path) -> None:
    servers = [LlamaServer(embedded_gguf_path(), tmp_path).start()]
    try:
        spec = api_model("llama", servers[0].base_url, endpoint="completions", max_concurrency=2, max_retries=1)
        pilot = with_models(demo, [spec], mixed=False)

        def restart() -> None:
            servers.append(LlamaServer(embedded_gguf_path(), tmp_path, port=servers[0].port).start())

        lose_endpoint_and_resume(pilot, spec, tmp_path, servers[0].kill, restart)
    finally:
        for server in servers:
            server.stop()


def test_api_key_never_written(llama_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-roi-FAKE-KEY-9f3c2e7a51"
    monkeypatch.setenv("ROI_TEST_API_KEY", key)
    with FaultProxy(upstream_port=llama_server.port) as proxy:
        # This server echoes the request's Authorization header in its 500 body.
        proxy.inject(Fault.SERVER_ERROR, match=json.dumps("Input: Greece")[1:-1])
        pilot = tmp_path / "keyed.yaml"
        price = "{input_per_1m: 0.15, output_per_1m: 0.60}"
        pilot.write_text(api_pilot(proxy.base_url, key_env="ROI_TEST_API_KEY", price=price), encoding="utf-8")
        outcome = CliRunner().invoke(app, ["run", str(pilot), "--out", str(tmp_path / "reports"), "--limit", "1"])
    assert outcome.exit_code == 4, outcome.output  # one call of two failed: more than the 10% a run may lose
    assert sum(e.fault is Fault.SERVER_ERROR for e in proxy.events) == 1
    db = sqlite3.connect(tmp_path / "reports" / "roi.db")
    (error,) = db.execute("SELECT error FROM calls WHERE error IS NOT NULL").fetchone()
    assert "InternalServerError (HTTP 500)" in error and "[redacted]" in error
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "summary.json" for p in written) and any(p.name == "roi.db" for p in written)
    for path in written:
        assert key.encode() not in path.read_bytes(), path
    assert key not in outcome.output


# ---------------------------------------------------------------- pure helpers (no server)


def test_chat_reply_read_as_continuation() -> None:
    prompt = "Give the capital.\n\nInput: Japan\nOutput:"
    assert as_continuation("Output: Tokyo", prompt) == " Tokyo"
    assert as_continuation("Tokyo", prompt) == " Tokyo"
    assert as_continuation("\n\nInput: China", prompt) == "\n\nInput: China"  # no answer stays no answer
    mixed = "...\nA[1] (capital) Japan ->"
    assert as_continuation("A[1] (capital) Japan -> Tokyo\nA[2] (upper) sky -> SKY", mixed) == (
        " Tokyo\nA[2] (upper) sky -> SKY"
    )


def test_retry_after() -> None:
    import httpx2
    import openai

    request = httpx2.Request("POST", "http://127.0.0.1/v1/completions")
    for headers, expected in (({"retry-after": "2"}, 2.0), ({"retry-after-ms": "1500"}, 1.5), ({}, None)):
        response = httpx2.Response(429, headers=headers, request=request)
        err = openai.RateLimitError("limited", response=response, body=None)
        assert retry_after_s(err) == expected


def test_max_cost_against_the_server(demo: LoadedPilot, llama_server: LlamaServer, tmp_path: Path) -> None:
    price = {"input_per_1m": 1000.0, "output_per_1m": 4000.0}  # dear, so a few calls reach the limit
    spec = api_model("llama", llama_server.base_url, endpoint="completions", price=price)
    pilot = with_models(demo, [spec], mixed=False)
    limit = 0.5
    result = run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=2, max_cost_usd=limit))
    done = calls(result)
    assert result.stopped is not None and 0 < len(done) < 8
    assert done["error"].isna().all() and done["cost_usd"].sum() <= limit
    by_usage = (done["prompt_tokens"] * 1000.0 + done["output_tokens"] * 4000.0) / 1e6
    assert done["cost_usd"].to_numpy() == pytest.approx(by_usage.to_numpy())


def test_key_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from roi.errors import RoiError

    with pytest.raises(ValidationError, match="set api_key_env"):
        ModelSpec(name="m", backend="openai", model="gpt-4o-mini")  # the official endpoint needs a key
    monkeypatch.delenv("ROI_UNSET_KEY", raising=False)
    spec = ModelSpec(name="m", backend="openai", model="gpt-4o-mini", api_key_env="ROI_UNSET_KEY")
    with pytest.raises(RoiError, match=r"ROI_UNSET_KEY .* is not set"):
        OpenAIBackend(spec, PILOTS, lambda s: None)
