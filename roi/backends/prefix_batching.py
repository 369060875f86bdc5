"""Greedy generation for many prompts that share a prefix: the prefix once, the suffixes in batches.

Layout of a batch (row r, `d_r` = how much shorter its suffix is than the longest one):

    KV cache   [ 0 x d_r | prefix[: L - d_r] ]          the prefix's keys/values, shifted right by d_r
    new input  [ prefix[L - d_r :] + suffix_r ]          every row feeds the same number of tokens

so every row is an ordinary left-padded sequence: its real tokens are contiguous, positions are
0..n-1 as in a batch-of-one call, and Gemma 3's sliding-window layers (window counted in cache slots)
see exactly the tokens they would see alone. Padding between prefix and suffix would be simpler
but shifts the window by the padding on long prompts, which changes answers.

Logits are computed for the last position only; a row leaves the batch as soon as it stops (end of
sequence, one of its stop strings, or its token budget), so long answers do not hold short ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache, StopStringCriteria

_CPU_MAX_BATCH = 64  # past this a 2-8 core CPU is compute-bound: bigger batches only cost memory
_CUDA_MAX_BATCH = 256


@dataclass(frozen=True)
class Row:
    """One prompt to complete: its token ids, token budget and stop strings."""

    ids: tuple[int, ...]
    max_new_tokens: int
    stop: tuple[str, ...]


@dataclass
class Completion:
    tokens: list[int] = field(default_factory=list)
    done: bool = False


@dataclass(frozen=True)
class SingleCallTiming:
    """Wall time of one prompt run alone (batch of one, no shared cache): a production call."""

    prompt_tokens: int
    prefill_s: float
    decode_step_s: float  # mean time of one decoding step after the first token

    def latency(self, prompt_tokens: int, output_tokens: int) -> float:
        """The modelled wall time of a call alone: prefill scaled by prompt length, then decode steps."""
        prefill = self.prefill_s * prompt_tokens / max(1, self.prompt_tokens)
        return prefill + self.decode_step_s * max(0, output_tokens - 1)


def shared_length(rows: Sequence[Row], window: int | None) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own to feed; capped so
    a sliding-window cache layer still holds the whole prefix."""
    shortest = min(len(r.ids) for r in rows)
    common = 0
    first = rows[0].ids
    while common < shortest - 1 and all(r.ids[common] == first[common] for r in rows):
        common += 1
    return min(common, window - 1) if window else common


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of keys and values one token occupies across all layers."""
    cfg = model.config.get_text_config(decoder=True)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    elem = next(model.parameters()).element_size()
    return int(2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * elem)


def model_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def memory_budget(model: Any, device: str) -> int:
    """Bytes a batch's cache and logits may take. On CPU a quarter of the model's size (weights, the
    tokenizer and PyTorch already take about 1.9x the weights of a 270M model with a 262k vocabulary;
    past ~10 rows a small CPU is compute-bound anyway) and never more than a quarter of the free
    RAM; on CUDA half of the free device memory."""
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info()
        return int(free // 2)
    budget = model_bytes(model) // 4
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        budget = min(budget, available // 4)
    except (ValueError, OSError):
        pass
    return max(budget, 64 * 2**20)


class PrefixBatcher:
    """Runs greedy decoding on one device for rows of token ids; see the module docstring."""

    def __init__(self, model: Any, tokenizer: Any, device: str, budget_bytes: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        cfg = model.config.get_text_config(decoder=True)
        layer_types = getattr(cfg, "layer_types", None) or []
        self.window: int | None = getattr(cfg, "sliding_window", None) if "sliding_attention" in layer_types else None
        eos = model.generation_config.eos_token_id
        self.eos = set([eos] if isinstance(eos, int) else list(eos or []))
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.token_bytes = kv_bytes_per_token(model)
        vocab = int(cfg.vocab_size)
        self.row_logit_bytes = 3 * vocab * 4  # last-position logits, float32 copy for argmax, slack
        self.budget = budget_bytes if budget_bytes is not None else memory_budget(model, device)
        self.max_batch = _CUDA_MAX_BATCH if device.startswith("cuda") else _CPU_MAX_BATCH
        self._stoppers: dict[tuple[str, ...], StopStringCriteria] = {}

    # -- public -----------------------------------------------------------------------------------

    def complete(self, rows: Sequence[Row]) -> Iterator[dict[int, list[int]]]:
        """Generated token ids by row index (stop token included, as `generate` returns them), one
        dict per batch as it finishes."""
        if not rows:
            return
        shared = shared_length(rows, self.window)
        prefix_kv = self._prefix_cache(rows[0].ids[:shared]) if shared else None
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
        for batch in self._batches([rows[i] for i in order], order):
            out: dict[int, list[int]] = {}
            self._run_batch(rows, batch, shared, prefix_kv, out)
            yield out

    def time_alone(self, row: Row, steps: int = 4) -> SingleCallTiming:
        """Time `row` as a production call would run: full prompt, no shared cache, batch of one;
        the prefill and the first `steps` decoding steps (the mean step time holds for the rest)."""
        probe = Row(row.ids, steps + 1, ())
        started = time.perf_counter()
        timing: list[float] = []
        tokens = self._decode([probe], [0], 0, None, timing)
        prefill = timing[0] - started
        done = len(tokens[0]) - 1
        step_s = (time.perf_counter() - timing[0]) / done if done > 0 else prefill / max(1, len(row.ids))
        return SingleCallTiming(len(row.ids), prefill, step_s)

    # -- internals --------------------------------------------------------------------------------

    def _row_bytes(self, row: Row) -> int:
        return (len(row.ids) + row.max_new_tokens) * self.token_bytes + self.row_logit_bytes

    def _batches(self, rows: list[Row], order: list[int]) -> list[list[int]]:
        """Consecutive runs of (length-sorted) rows whose worst-case cache fits the budget."""
        batches: list[list[int]] = []
        current: list[int] = []
        used = 0
        for row, index in zip(rows, order, strict=True):
            cost = self._row_bytes(row)
            if current and (used + cost > self.budget or len(current) >= self.max_batch):
                batches.append(current)
                current, used = [], 0
            current.append(index)
            used += cost
        if current:
            batches.append(current)
        return batches

    def _run_batch(
        self, rows: Sequence[Row], batch: list[int], shared: int, prefix_kv: Any, out: dict[int, list[int]]
    ) -> None:
        try:
            for index, tokens in zip(batch, self._decode(rows, batch, shared, prefix_kv, None), strict=True):
                out[index] = tokens
        except torch.OutOfMemoryError:
            # Only CUDA reports running out of memory (a CPU process is killed): halve and retry.
            if len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            self.budget //= 2
            half = len(batch) // 2
            self._run_batch(rows, batch[:half], shared, prefix_kv, out)
            self._run_batch(rows, batch[half:], shared, prefix_kv, out)

    def _prefix_cache(self, ids: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of the shared prefix, one (key, value) pair per layer, batch of one."""
        cache = DynamicCache(config=self.model.config)
        input_ids = torch.tensor([list(ids)], device=self.device)
        with torch.inference_mode():
            self.model(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=1)
        layers: list[Any] = list(cache.layers)
        return [(layer.keys, layer.values) for layer in layers]

    def _batch_cache(self, prefix_kv: list[tuple[torch.Tensor, torch.Tensor]], pads: list[int]) -> DynamicCache:
        """The prefix cache for every row, shifted right by the row's padding (see module docstring)."""
        cache = DynamicCache(config=self.model.config)
        for layer_idx, (keys, values) in enumerate(prefix_kv):
            shared = keys.shape[-2]
            batch_k = keys.new_zeros((len(pads), *keys.shape[1:]))
            batch_v = values.new_zeros((len(pads), *values.shape[1:]))
            for r, pad in enumerate(pads):
                batch_k[r, :, pad:] = keys[0, :, : shared - pad]
                batch_v[r, :, pad:] = values[0, :, : shared - pad]
            cache.update(batch_k, batch_v, layer_idx)
        return cache

    def _decode(
        self,
        rows: Sequence[Row],
        batch: list[int],
        shared: int,
        prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] | None,
        first_token_at: list[float] | None,
    ) -> list[list[int]]:
        torch_device = self.device
        own = [len(rows[i].ids) - shared for i in batch]
        width = max(own)
        pads = [width - n for n in own]
        if prefix_kv is not None and shared:
            cache = self._batch_cache(prefix_kv, pads)
            cached = shared
        else:
            cache, cached = DynamicCache(config=self.model.config), 0
        feed = [list(rows[i].ids[cached - pad :]) for i, pad in zip(batch, pads, strict=True)]
        input_ids = torch.tensor(feed, device=torch_device)
        mask = torch.ones((len(batch), cached + width), dtype=torch.long, device=torch_device)
        for r, pad in enumerate(pads):
            mask[r, :pad] = 0
        starts = torch.tensor([cached - pad for pad in pads], device=torch_device)
        positions = starts[:, None] + torch.arange(width, device=torch_device)[None, :]
        results = [Completion() for _ in batch]
        active = list(range(len(batch)))
        with torch.inference_mode():
            while True:
                logits = self.model(
                    input_ids=input_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    cache=cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits
                next_ids = logits[:, -1, :].argmax(dim=-1)
                if first_token_at is not None and not first_token_at:
                    first_token_at.append(time.perf_counter())
                keep = self._advance(rows, batch, active, next_ids.tolist(), results)
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=torch_device)
                    cache.batch_select_indices(index)
                    mask, positions, next_ids = mask[index], positions[index], next_ids[index]
                    active = [active[k] for k in keep]
                input_ids = next_ids[:, None]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                positions = positions[:, -1:] + 1
        return [c.tokens for c in results]

    def _advance(
        self,
        rows: Sequence[Row],
        batch: list[int],
        active: list[int],
        next_ids: list[int],
        results: list[Completion],
    ) -> list[int]:
        """Append each active row's token; the positions (within `active`) of rows still going."""
        keep = []
        for k, (r, token) in enumerate(zip(active, next_ids, strict=True)):
            row, done = rows[batch[r]], results[r]
            done.tokens.append(token)
            if token in self.eos or len(done.tokens) >= row.max_new_tokens or self._stopped(row, done.tokens):
                done.done = True
            else:
                keep.append(k)
        return keep

    def _stopped(self, row: Row, generated: list[int]) -> bool:
        """Whether the text now ends with a stop string, exactly as `generate(stop_strings=...)` decides
        (the check may straddle the prompt's last tokens, as it does there)."""
        if not row.stop:
            return False
        stopper = self._stopper(row.stop)
        assert stopper is not None
        tail = (list(row.ids) + generated)[-stopper.maximum_token_len :]
        return bool(stopper(torch.tensor([tail]), None)[0])

    def _stopper(self, stop: tuple[str, ...]) -> StopStringCriteria | None:
        if not stop:
            return None
        stopper = self._stoppers.get(stop)
        if stopper is None:
            # Preprocessing the whole vocabulary takes about a second: once per stop set, not per call.
            stopper = self._stoppers[stop] = StopStringCriteria(self.tokenizer, list(stop))
        return stopper
