"""The in-place cache returns and reports exactly what transformers' DynamicCache does, step by step,
for the embedded model's layer kinds (full and 512-slot sliding window), across the window's edge and
after rows leave the batch."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, DynamicCache

from roi.backends.local.growing_cache import GrowingLayer, GrowingSlidingLayer, growing_cache


def test_growing_cache_matches_dynamic_cache(embedded_model_dir: Path) -> None:
    config = AutoConfig.from_pretrained(embedded_model_dir)
    ours, theirs = growing_cache(config, spare=3), DynamicCache(config=config)
    kinds = {type(layer) for layer in ours.layers}
    assert kinds == {GrowingLayer, GrowingSlidingLayer}
    generator = torch.Generator().manual_seed(0)
    batch = 4
    # A prefill of 500 tokens, a feed of 9, then single steps past the 512-slot window.
    for step, width in enumerate([500, 9] + [1] * 12):
        if step == 5:  # two rows leave the batch
            keep = torch.tensor([0, 2])
            ours.batch_select_indices(keep)
            theirs.batch_select_indices(keep)
            batch = 2
        for layer_idx in (0, 5):  # a sliding-window layer and a full-attention layer
            k = torch.randn(batch, 1, width, 4, generator=generator)
            v = torch.randn(batch, 1, width, 4, generator=generator)
            got, want = ours.update(k, v, layer_idx), theirs.update(k.clone(), v.clone(), layer_idx)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), (step, layer_idx)
            assert ours.layers[layer_idx].get_seq_length() == theirs.layers[layer_idx].get_seq_length()
            assert ours.layers[layer_idx].get_mask_sizes(1) == theirs.layers[layer_idx].get_mask_sizes(1)
    assert ours.get_seq_length(0) == 500 + 9 + 12
