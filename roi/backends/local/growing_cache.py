"""A transformers `DynamicCache` whose layers append keys/values in place, in room reserved ahead.

`DynamicLayer.update` concatenates: every decoding step copies the whole cache of every layer (a large
share of a batched mixed-prompt run's time: BENCHMARKS.md). These layers reserve `spare` slots past
what they hold and write new tokens into them, so a step copies only its own tokens. They return and
report exactly what the layers they replace would (same tensors' contents, same lengths, same mask
sizes), so the model computes the same numbers; the sliding-window layer keeps its whole history
instead of the last `window - 1` slots, and returns the same visible slice.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer


class _Room:
    """Buffers with reserved slots; `keys`/`values` are views of their first `length` slots."""

    keys: Any
    values: Any
    spare: int
    length: int
    _k: torch.Tensor | None
    _v: torch.Tensor | None

    def _init_room(self, spare: int) -> None:
        self.spare, self.length, self._k, self._v = spare, 0, None, None

    def _append(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        n, k = self.length, key_states.shape[-2]
        if self._k is None or self._k.shape[0] != key_states.shape[0] or n + k > self._k.shape[-2]:
            self._reserve(key_states, value_states, max(n + k + self.spare, 2 * n))
        assert self._k is not None and self._v is not None
        self._k[:, :, n : n + k] = key_states
        self._v[:, :, n : n + k] = value_states
        self.length = n + k
        self.keys, self.values = self._k[:, :, : n + k], self._v[:, :, : n + k]

    def _reserve(self, key_states: torch.Tensor, value_states: torch.Tensor, capacity: int) -> None:
        batch, heads, _, dim = key_states.shape
        k = key_states.new_empty((batch, heads, capacity, dim))
        v = value_states.new_empty((batch, heads, capacity, value_states.shape[-1]))
        if self.length:
            k[:, :, : self.length] = self.keys
            v[:, :, : self.length] = self.values
        self._k, self._v = k, v

    def release(self) -> None:
        """Drop the buffers (the layer is not used again): lets a merge hold one layer twice, not all."""
        self._k = self._v = self.keys = self.values = None

    def roll(self, shifts: list[int]) -> None:
        """Move row r's slots right by `shifts[r]`, its last slots wrapping to the front (to be masked)."""
        assert self._k is not None and self._v is not None
        for r, shift in enumerate(shifts):
            if shift:
                self._k[r, :, : self.length] = torch.roll(self._k[r, :, : self.length], shift, dims=1)
                self._v[r, :, : self.length] = torch.roll(self._v[r, :, : self.length], shift, dims=1)

    def _select(self, indices: torch.Tensor) -> None:
        if self.length and self._k is not None and self._v is not None:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]


class GrowingLayer(_Room, DynamicLayer):  # type: ignore[no-untyped-call]  # transformers is untyped
    def __init__(self, spare: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._init_room(spare)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self._append(key_states, value_states)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._select(indices)


class GrowingSlidingLayer(_Room, DynamicSlidingWindowLayer):  # type: ignore[no-untyped-call]
    def __init__(self, sliding_window: int, spare: int) -> None:
        super().__init__(sliding_window=sliding_window)
        self._init_room(spare)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.cumulative_length += key_states.shape[-2]
        self._append(key_states, value_states)
        # What `DynamicSlidingWindowLayer` returns: its last `window - 1` slots and the new ones.
        visible = self.sliding_window - 1 + key_states.shape[-2]
        return self.keys[:, :, -visible:], self.values[:, :, -visible:]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._select(indices)


def growing_cache(config: Any, spare: int = 0) -> DynamicCache:
    """A `DynamicCache` for `config` with every layer replaced by its in-place counterpart."""
    cache = DynamicCache(config=config)
    layers: list[Any] = []
    for layer in cache.layers:
        if isinstance(layer, DynamicSlidingWindowLayer):
            layers.append(GrowingSlidingLayer(layer.sliding_window, spare))
        elif type(layer) is DynamicLayer:
            layers.append(GrowingLayer(spare))
        else:  # a layer kind this module does not know: keep the library's own
            layers.append(layer)
    cache.layers = layers
    return cache


KV = list[tuple[torch.Tensor, torch.Tensor]]


def right_aligned(cache: DynamicCache, rows: int, width: int, sources: list[tuple[int, KV, int]]) -> None:
    """Fill an empty cache with `rows` rows of `width` slots: for each `(row, prefix, n)` of `sources`
    the row's last `n` slots hold the first `n` keys/values of `prefix` (a batch of one, per layer);
    every other slot is zero (masked out, but finite: a masked NaN would still poison the output)."""
    for layer_idx in range(len(sources[0][1])):
        keys0, values0 = sources[0][1][layer_idx]
        k = keys0.new_zeros((rows, keys0.shape[1], width, keys0.shape[3]))
        v = values0.new_zeros((rows, values0.shape[1], width, values0.shape[3]))
        for r, kv, n in sources:
            k[r, :, width - n :] = kv[layer_idx][0][0, :, :n]
            v[r, :, width - n :] = kv[layer_idx][1][0, :, :n]
        cache.update(k, v, layer_idx)


def merged_cache(config: Any, a: DynamicCache, b: DynamicCache, width: int, spare: int) -> DynamicCache:
    """A new cache holding `a`'s rows then `b`'s, each right-aligned in `width` slots, zeros before.
    `a` and `b` are emptied layer by layer as they are copied (they must not be used afterwards)."""
    cache = growing_cache(config, spare)
    layers: list[tuple[Any, Any]] = list(zip(a.layers, b.layers, strict=True))
    for layer_idx, (la, lb) in enumerate(layers):
        k = la.keys.new_zeros((la.keys.shape[0] + lb.keys.shape[0], la.keys.shape[1], width, la.keys.shape[3]))
        v = la.values.new_zeros((k.shape[0], la.values.shape[1], width, la.values.shape[3]))
        for layer, start in ((la, 0), (lb, la.keys.shape[0])):
            rows, slots = layer.keys.shape[0], layer.keys.shape[2]
            k[start : start + rows, :, width - slots :] = layer.keys
            v[start : start + rows, :, width - slots :] = layer.values
            if isinstance(layer, _Room):
                layer.release()
        cache.update(k, v, layer_idx)
    return cache


def all_rollable(cache: DynamicCache) -> bool:
    return all(isinstance(layer, _Room) and layer.length for layer in cache.layers)


def roll_rows(cache: DynamicCache, shifts: list[int]) -> None:
    """Roll every layer's rows (see `_Room.roll`); the caller masks the wrapped slots."""
    if any(shifts):
        for layer in cache.layers:
            assert isinstance(layer, _Room)
            layer.roll(shifts)
