"""Attention over a bank of prefixes held once, on the real embedded model: every row must get the hidden
states of its prompt run alone, past Gemma 3's 512-token sliding window and with two groups in one batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from roi.backends.local import shared_prefix
from roi.backends.local.growing_cache import growing_cache
from roi.backends.local.shared_prefix import PrefixBank, SharedAttention
from roi.pilot import load_pilot
from roi.prompts import build_calls
from tests.conftest import PILOTS


@pytest.fixture(scope="module")
def model(embedded_model_dir: Path) -> Iterator[Any]:
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir), dtype=torch.float32)
    loaded.eval()
    yield loaded


@pytest.fixture(scope="module")
def prompts(embedded_model_dir: Path) -> list[list[int]]:
    """Token ids of real demo prompts: a mixed one (~500 tokens) and a single-mode one (~100)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir))
    calls = build_calls(load_pilot(PILOTS / "superposition-demo.yaml"), limit=1)
    mixed = next(c for c in calls if c.mode == "mixed")
    single = next(c for c in calls if c.mode == "single")
    return [list(tokenizer(c.request(c.call_key).prompt).input_ids) for c in (mixed, single)]


def alone(model: Any, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model.get_decoder()(input_ids=torch.tensor([ids])).last_hidden_state[0]


def prefix_kv(model: Any, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cache = growing_cache(model.config)
    with torch.inference_mode():
        model.get_decoder()(input_ids=torch.tensor([ids]), cache=cache, use_cache=True)
    layers: list[Any] = list(cache.layers)
    return [(layer.keys, layer.values) for layer in layers]


def test_rows_of_two_groups_see_what_their_prompts_see_alone(model: Any, prompts: list[list[int]]) -> None:
    """Three rows, two over a 480-token prefix (their positions run past the 512-token window) and one over
    a 60-token prefix, in one batch: own parts left-padded to the longest, then two decoding steps. Every
    real position's hidden state equals the prompt's run alone."""
    assert shared_prefix.enable(model)
    long, short = prompts[0] + prompts[0][1:], prompts[1]  # the mixed prompt twice over: ~1000 tokens
    groups = {0: 480, 1: 60}
    rows = [(0, long[:500]), (0, long[:480] + long[520:560]), (1, short[:70])]  # (group, whole prompt)
    bank = PrefixBank.of([0, 1], {g: prefix_kv(model, rows[g * 2][1][:n]) for g, n in groups.items()}, groups)
    fed = [ids[groups[g] :] for g, ids in rows]
    width = max(len(f) for f in fed)
    ids = torch.tensor([[0] * (width - len(f)) + f for f in fed])
    valid = torch.tensor([[0] * (width - len(f)) + [1] * len(f) for f in fed])
    positions = torch.tensor(
        [[0] * (width - len(f)) + list(range(groups[g], len(p))) for (g, p), f in zip(rows, fed, strict=True)]
    )
    cache = growing_cache(model.config, spare=4)
    decoder = model.get_decoder()
    whole = [list(p) for _, p in rows]
    for step in range(3):
        shared = SharedAttention(bank, [g for g, _ in rows], valid, positions)
        with torch.inference_mode():
            hidden = decoder(
                input_ids=ids, attention_mask=shared_prefix.placeholder_mask(len(rows), ids.shape[1], "cpu"),
                position_ids=positions, cache=cache, use_cache=True, roi_shared=shared,
            ).last_hidden_state  # fmt: skip
        for r, prompt in enumerate(whole):
            reference = alone(model, prompt)
            real = int(valid[r, -ids.shape[1] :].sum()) if step == 0 else 1
            got, want = hidden[r, -real:], reference[-real:]
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
        # Next step: every row feeds one more token (a fixed one: the comparison does not need greedy).
        token = 100 + step
        for prompt in whole:
            prompt.append(token)
        ids = torch.full((len(rows), 1), token)
        valid = torch.cat([valid, torch.ones((len(rows), 1), dtype=valid.dtype)], dim=1)
        positions = positions[:, -1:] + 1
    assert max(len(p) for p in whole) > 512 + 3  # the window was crossed


def test_without_a_bank_the_function_is_sdpa(model: Any, prompts: list[list[int]]) -> None:
    """After `enable`, a forward pass without `roi_shared` (the naive path, the prefix passes, the probe)
    gives bit for bit what the model gave with transformers' own sdpa attention."""
    ids = prompts[1]
    model.set_attn_implementation("sdpa")
    before = alone(model, ids)
    assert shared_prefix.enable(model)
    assert model.config._attn_implementation == shared_prefix.NAME
    assert torch.equal(alone(model, ids), before)


@pytest.mark.parametrize("failure", ["wrong", "raises"])
def test_a_model_the_check_fails_keeps_its_attention(model: Any, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """If rows over the bank do not reproduce the prompts run alone (here: attention that ignores the
    bank, or that raises as a model with other attention modules might), `enable` says so and leaves
    the model on sdpa, so the batcher takes the ordinary path."""
    model.set_attn_implementation("sdpa")
    original = SharedAttention.attend

    def without_bank(self: SharedAttention, *args: Any) -> torch.Tensor:
        if failure == "raises":
            raise AttributeError("layer_idx")
        self.bank = PrefixBank((), [], {g: (0, 0) for g in self.row_groups})
        return original(self, *args)

    monkeypatch.setattr(SharedAttention, "attend", without_bank)
    assert not shared_prefix.enable(model)
    assert model.config._attn_implementation == "sdpa"


def test_soft_capped_attention_is_not_supported(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert shared_prefix.supported(model)
    monkeypatch.setattr(model.config, "attn_logit_softcapping", 50.0)
    assert not shared_prefix.supported(model)
