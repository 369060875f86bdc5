"""The openai backend against a real vLLM server (the CPU build, bfloat16) serving the converted embedded
model: agreement with the local transformers run, usage and cached tokens priced at the cached price,
faults from a proxy on loopback, an endpoint that dies mid-run and resume, and the probe through echo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roi.backends import openai_logprobs as logprobs
from roi.backends.local.teacher_forcing import score_candidates
from roi.backends.openai_backend import OpenAIBackend
from roi.pilot import LoadedPilot, ModelSpec, load_pilot
from roi.runner import RunOptions, RunResult, run_pilot
from tests.api_runs import (
    answers,
    calls,
    checked_agreement,
    lose_endpoint_and_resume,
    of_model,
    run_through_faults,
    with_models,
)
from tests.servers import Fault, FaultProxy, VllmServer
from tests.servers.vllm import SERVED_NAME
from tests.test_probe_api import CANDIDATES, CAPITALS

from .conftest import PILOTS

pytestmark = [pytest.mark.server, pytest.mark.vllm]

LIMIT = 2
# Parsed answers identical to the local float32 run on the same items (the server computes in
# bfloat16): measured share and the whole-demo figure in BENCHMARKS.md.
AGREEMENT_FLOOR = 0.80
PRICE = {"input_per_1m": 1.0, "cached_input_per_1m": 0.25, "output_per_1m": 4.0}
# Echo log-probabilities against the local float32 probe. The server's logits are bfloat16, spaced
# 0.125 apart at the magnitudes the top tokens have here (16-32), so two candidates may tie and a
# log-probability may move by about that much; a wrong token span moves it by 1 or more.
LOGPROB_ABS = 0.25


def vllm_model(name: str, base_url: str, **settings: Any) -> ModelSpec:
    settings = {"endpoint": "completions", **settings}
    return ModelSpec(name=name, backend="openai", model=SERVED_NAME, base_url=base_url, **settings)


@pytest.fixture(scope="module")
def demo() -> LoadedPilot:
    return load_pilot(PILOTS / "superposition-demo.yaml")


@pytest.fixture(scope="module")
def side_by_side(demo: LoadedPilot, vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The demo pilot (LIMIT items per task, both modes) on the local model and on vLLM."""
    models = [demo.spec.models[0], vllm_model("vllm", vllm_server.base_url, max_concurrency=4, price=PRICE)]
    out = tmp_path_factory.mktemp("vllm-side-by-side")
    return run_pilot(with_models(demo, models), RunOptions(out_dir=out, limit=LIMIT))


def test_vllm_agrees_with_transformers(side_by_side: RunResult) -> None:
    served = answers(side_by_side, "vllm")
    assert len(served) == 2 * 4 * LIMIT
    label = "transformers (float32) vs vLLM (bfloat16)"
    checked_agreement(answers(side_by_side, "gemma-270m"), served, AGREEMENT_FLOOR, label)


def test_vllm_usage_and_cached_tokens_are_priced(side_by_side: RunResult) -> None:
    done = calls(side_by_side)
    served = of_model(done, "vllm")
    assert served["error"].isna().all() and (served["retries"] == 0).all()
    assert (served["output_tokens"] > 0).all()
    # the same tokenizer on both sides: the server's usage counts the prompt as the local tokenizer does
    local = of_model(done, "gemma-270m")
    assert (local["prompt_tokens"] == served.loc[local.index, "prompt_tokens"]).all()
    cached = served["cached_prompt_tokens"]
    print(f"vLLM cached prompt tokens: {int(cached.sum())} of {int(served['prompt_tokens'].sum())}")
    assert cached.notna().all() and (cached > 0).any() and (cached <= served["prompt_tokens"]).all()
    fresh = served["prompt_tokens"] - cached
    expected = (fresh * PRICE["input_per_1m"] + cached * PRICE["cached_input_per_1m"]
                + served["output_tokens"] * PRICE["output_per_1m"]) / 1e6  # fmt: skip
    assert served["cost_usd"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-12)
    cells = {(m.model, m.mode): m for m in side_by_side.summary.modes}
    assert sum(cells[("vllm", mode)].cost_usd or 0 for mode in ("single", "mixed")) == pytest.approx(
        float(expected.sum())
    )


def test_vllm_faults_are_retried_and_lose_nothing(demo: LoadedPilot, vllm_server: VllmServer, tmp_path: Path) -> None:
    timeout_s = 20.0  # the hang outlasts it; a real call on a loaded machine must not

    def spec_for(base_url: str) -> ModelSpec:
        return vllm_model("vllm", base_url, max_concurrency=2, timeout_s=timeout_s, max_retries=3)

    run_through_faults(demo, vllm_server.port, spec_for, tmp_path, timeout_s)


def test_vllm_endpoint_lost_mid_run_then_resumed(demo: LoadedPilot, vllm_server: VllmServer, tmp_path: Path) -> None:
    """Every connection to the server dropped once three calls are stored, as a server that died would
    leave them (restarting vLLM itself takes minutes here), then let through again."""
    with FaultProxy(upstream_port=vllm_server.port) as proxy:
        spec = vllm_model("vllm", proxy.base_url, max_concurrency=2, max_retries=1)
        pilot = with_models(demo, [spec], mixed=False)
        lose_endpoint_and_resume(
            pilot, spec, tmp_path, lambda: proxy.inject(Fault.DROP, times=10_000), proxy.rules.clear
        )


def test_vllm_echo_probe_agrees_with_the_local_probe(vllm_server: VllmServer, embedded_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir), dtype=torch.float32, local_files_only=True)
    local = score_candidates(model.eval(), tokenizer, CAPITALS, CANDIDATES)
    backend = OpenAIBackend(vllm_model("vllm", vllm_server.base_url), PILOTS, lambda s: None)
    echoed, prompt_tokens = logprobs.score_by_echo(backend.logprobs, CAPITALS, CANDIDATES)
    assert prompt_tokens >= 10
    assert [e.tokens for e in echoed] == [s.tokens for s in local]
    for cand, api, here in zip(CANDIDATES, echoed, local, strict=True):
        print(f"{cand!r}: echo {api.logprob:.4f} local {here.logprob:.4f} diff {api.logprob - here.logprob:+.4f}")
    for cand, api, here in zip(CANDIDATES, echoed, local, strict=True):
        assert api.logprob == pytest.approx(here.logprob, abs=LOGPROB_ABS), cand
