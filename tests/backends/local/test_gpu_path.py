"""The local engine's CUDA branch, exercised on CPU: the model in bfloat16 (as `dtype: auto` loads it on
a GPU), shared-prefix attention in reduced precision, and a join that runs out of device memory halving
the batch budget and retrying. No GPU is needed: the same code runs on CPU in bfloat16, and the
out-of-memory error is raised for real by a hook on the decoder, the way PyTorch raises it on a GPU
whose memory a join's activations exceed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from roi.backends.local.prefix_batching import PrefixBatcher
from roi.backends.local.transformers_backend import TransformersBackend, pick_dtype
from roi.pilot import load_pilot
from roi.prompts import build_calls, parse_answers
from tests.backends.local.test_transformers_backend import demo_requests
from tests.conftest import PILOTS, REPO

DEMO = PILOTS / "superposition-demo.yaml"
# Parsed answers of the bfloat16 run identical to the float32 run's, on the demo's first two items per task
# and two mixed calls. Measured: BENCHMARKS.md ("The GPU path on CPU").
AGREEMENT_FLOOR = 0.8


def backend_in(dtype: str) -> TransformersBackend:
    spec = load_pilot(DEMO).spec.models[0].model_copy(update={"dtype": dtype, "device": "cpu"})
    return TransformersBackend(spec, REPO, lambda _: None)


@pytest.fixture(scope="module")
def bfloat16(embedded_model_dir: Path) -> Iterator[TransformersBackend]:
    backend = backend_in("bfloat16")
    yield backend
    backend.close()


def parsed(requests: list[Any], texts: dict[str, str | None]) -> dict[str, Any]:
    calls = {c.call_key: c for c in build_calls(load_pilot(DEMO), limit=2)}
    return {r.key: parse_answers(calls[r.key], texts[r.key] or "") for r in requests}


def test_cuda_loads_bfloat16_where_the_gpu_has_it() -> None:
    assert pick_dtype("auto", "cpu") == torch.float32
    assert pick_dtype("bfloat16", "cpu") == torch.bfloat16


def test_bfloat16_with_shared_prefix_attention_agrees_with_float32(
    bfloat16: TransformersBackend, embedded_model_dir: Path
) -> None:
    """The batched path in bfloat16 (attention over the prefix bank in reduced precision, softmax in
    float32; the output layer's own bfloat16 product) against the float32 run of the same calls."""
    assert bfloat16.model.dtype == torch.bfloat16
    assert bfloat16._batcher.shared, "the bank's check passes in bfloat16 (tolerance for reduced precision)"
    assert bfloat16._batcher.output.screen is None  # no screen: the GPU's own product
    requests = demo_requests()
    low = {r.key: r.text for r in bfloat16.generate(requests)}
    full = backend_in("float32")
    try:
        exact = {r.key: r.text for r in full.generate(requests)}
    finally:
        full.close()
    a, b = parsed(requests, low), parsed(requests, exact)
    agreement = sum(a[k] == b[k] for k in a) / len(a)
    print(f"bfloat16 vs float32: {agreement:.0%} of {len(a)} calls' parsed answers identical")
    assert agreement >= AGREEMENT_FLOOR
    assert all(text for text in low.values())  # every call answered


class DeviceMemory:
    """Raises PyTorch's out-of-memory error when a forward pass feeds more rows than `rows` (a join of too
    many calls); counts the errors."""

    def __init__(self, decoder: Any, rows: int) -> None:
        self.rows, self.raised = rows, 0
        self.handle = decoder.register_forward_pre_hook(self.check, with_kwargs=True)

    def check(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] > self.rows:
            self.raised += 1
            raise torch.OutOfMemoryError(f"out of memory: {ids.shape[0]} rows (injected, limit {self.rows})")

    def remove(self) -> None:
        self.handle.remove()


def test_a_join_out_of_memory_halves_the_budget_and_the_run_completes(bfloat16: TransformersBackend) -> None:
    requests = demo_requests()
    batcher = PrefixBatcher(bfloat16.model, bfloat16.tokenizer, "cpu", budget_bytes=512 * 2**20)
    rows = [bfloat16._row(r, i // 2) for i, r in enumerate(requests)]
    clean = {i: g.tokens for chunk in batcher.complete(rows) for i, g in chunk.items()}
    budget = batcher.budget
    memory = DeviceMemory(bfloat16.model.get_decoder(), rows=3)
    try:
        survived = {i: g.tokens for chunk in batcher.complete(rows) for i, g in chunk.items()}
    finally:
        memory.remove()
    assert memory.raised >= 1 and batcher.budget <= budget // 2
    assert survived == clean  # every call completed, with the same tokens
    assert all(survived.values()) and len(survived) == len(requests)


def test_out_of_memory_for_a_single_call_is_raised(bfloat16: TransformersBackend) -> None:
    """Halving cannot go below one call: then the error reaches the run (which stores the call as failed)."""
    batcher = PrefixBatcher(bfloat16.model, bfloat16.tokenizer, "cpu", budget_bytes=512 * 2**20)
    rows = [bfloat16._row(r, 0) for r in demo_requests()[:1]]
    memory = DeviceMemory(bfloat16.model.get_decoder(), rows=0)
    try:
        with pytest.raises(torch.OutOfMemoryError):
            list(batcher.complete(rows))
    finally:
        memory.remove()
