"""The transformers internals the local engine is built on, checked on a small randomly initialised
Gemma 3 so that an upgrade which changes them fails here, by name, instead of quietly falling back to
slower paths or computing something else: the attention registry and sdpa's function (shared-prefix
attention), the mask registry, the cache layers the growing cache replaces, and the model's
attention-implementation switch. The pin in pyproject.toml is the range these pass on."""

from __future__ import annotations

import inspect
import tomllib
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest
import torch
from packaging.requirements import Requirement

from roi.backends.local import shared_prefix
from roi.backends.local.growing_cache import GrowingLayer, GrowingSlidingLayer, growing_cache
from tests.conftest import REPO


@pytest.fixture(scope="module")
def tiny() -> Iterator[Any]:
    """A two-layer Gemma 3 (one sliding-window layer, one full) with random weights: no download."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, sliding_window=16, layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=256, attn_implementation="sdpa",
    )  # fmt: skip
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    yield model


def test_the_installed_transformers_is_in_the_pinned_range() -> None:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(Requirement(d) for d in dependencies if Requirement(d).name == "transformers")
    assert pin.specifier, "transformers must be pinned to the range the local engine is tested on"
    assert metadata.version("transformers") in pin.specifier


def test_the_attention_integration_is_where_the_engine_looks() -> None:
    from transformers import AttentionInterface, DynamicCache
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.modeling_utils import PreTrainedModel

    assert callable(AttentionInterface.register) and callable(AttentionMaskInterface.register) and callable(sdpa_mask)
    parameters = list(inspect.signature(sdpa_attention_forward).parameters)
    assert parameters[:5] == ["module", "query", "key", "value", "attention_mask"]
    assert {"dropout", "scaling"} <= set(parameters) and "kwargs" in parameters
    for layer in (DynamicLayer, DynamicSlidingWindowLayer):  # what the growing cache's layers override or call
        for name in ("update", "lazy_initialization", "batch_select_indices"):
            assert callable(getattr(layer, name, None)), f"{layer.__name__}.{name}"
    assert "sliding_window" in inspect.signature(DynamicSlidingWindowLayer.__init__).parameters
    assert "config" in inspect.signature(DynamicCache.__init__).parameters
    from transformers import Gemma3ForCausalLM

    assert "cache" in inspect.signature(Gemma3ForCausalLM.forward).parameters  # the engine passes `cache=`
    assert callable(PreTrainedModel.set_attn_implementation)
    assert callable(PreTrainedModel._can_set_attn_implementation)


def test_shared_prefix_attention_is_taken_up(tiny: Any) -> None:
    """`enable` checks on the model that attention over a prefix bank gives the hidden states of the
    prompts run whole; a change in how transformers routes attention (or its keyword arguments) makes
    the check fail and the engine fall back to sdpa, which this test turns into a failure."""
    assert tiny.config._attn_implementation == "sdpa"
    try:
        assert shared_prefix.enable(tiny), "shared-prefix attention fell back to sdpa on this transformers"
        assert tiny.config._attn_implementation == shared_prefix.NAME
    finally:
        tiny.set_attn_implementation("sdpa")


def test_the_growing_cache_replaces_every_layer_and_decodes_the_same(tiny: Any) -> None:
    """Past the sliding window, a prompt and three greedy steps give the same logits through the growing
    cache as through the library's own cache."""
    cache = growing_cache(tiny.config, spare=4)
    assert [type(layer) for layer in cache.layers] == [GrowingSlidingLayer, GrowingLayer]
    from transformers import DynamicCache

    prompt = torch.tensor([[2, *range(10, 30)]])  # 21 tokens: longer than the 16-token window
    outputs = []
    for kv in (DynamicCache(config=tiny.config), growing_cache(tiny.config, spare=4)):
        ids, steps = prompt, []
        with torch.inference_mode():
            for _ in range(4):
                logits = tiny(input_ids=ids, cache=kv, use_cache=True).logits[:, -1]
                steps.append(logits)
                ids = logits.argmax(-1, keepdim=True)
        outputs.append(torch.stack(steps))
        assert kv.get_seq_length() == prompt.shape[1] + 3  # the cache was used, under the name `cache`
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
