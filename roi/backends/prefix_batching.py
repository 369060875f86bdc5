"""Greedy generation for many prompts: each shared prompt prefix runs once, every row decodes in batches.

Rows carry a `group`; the rows of a group share a prompt prefix (a task's instruction and shots, a
mixed group's demonstrations), which runs once as a batch of one and whose keys/values every row of
the group reuses. A batch may hold rows of several groups: rows are sorted by the length of their own
part (the tokens after their group's prefix), so the single-mode calls of every task decode together
and read the weights once per step instead of once per task.

Layout of a batch of width `F` (the longest own part in it; row r has `n_r` tokens):

    KV cache   [ 0 ... 0 | prefix_r[: n_r - F] ]     right-aligned, left padding masked out
    new input  [ ids_r[n_r - F :] ]                  every row feeds the same F tokens

so every row is an ordinary left-padded sequence: its real tokens are contiguous, positions are
0..n_r-1 as in a batch-of-one call, and Gemma 3's sliding-window layers (window counted in cache slots)
see exactly the tokens they would see alone. Padding between prefix and suffix would be simpler but
shifts the window by the padding on long prompts, which changes answers. A row whose own part is
shorter than F re-feeds the last prefix tokens that makes room for.

Logits are computed for the last position only; a row leaves the batch as soon as it stops (end of
sequence, one of its stop strings, or its token budget), so long answers do not hold short ones.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from roi.backends.growing_cache import growing_cache

_CPU_MAX_BATCH = 64  # past this a 2-8 core CPU is compute-bound: bigger batches only cost memory
_CUDA_MAX_BATCH = 256
_STOP_CONTEXT = 8  # prompt tokens decoded with the answer, so a stop string may straddle the seam
_TIMED_STEPS = 3  # decoding steps timed alone per group (their median is the step time)


@dataclass(frozen=True)
class Row:
    """One prompt to complete: its token ids, token budget, stop strings and prefix group."""

    ids: tuple[int, ...]
    max_new_tokens: int
    stop: tuple[str, ...]
    group: int = 0


@dataclass
class Completion:
    tokens: list[int] = field(default_factory=list)
    done: bool = False


@dataclass(frozen=True)
class Generated:
    """A finished row: its token ids (stop token included, as `generate` returns them) and the modelled
    latency of the call run alone."""

    tokens: list[int]
    latency_s: float


@dataclass(frozen=True)
class SingleCallTiming:
    """Wall time of a prompt run alone (batch of one, no shared cache): a production call."""

    prompt_tokens: int
    prefill_s: float
    decode_step_s: float  # median time of one decoding step after the first token

    def latency(self, prompt_tokens: int, output_tokens: int) -> float:
        """The modelled wall time of a call alone: prefill scaled by prompt length, then decode steps."""
        prefill = self.prefill_s * prompt_tokens / max(1, self.prompt_tokens)
        return prefill + self.decode_step_s * max(0, output_tokens - 1)


@dataclass
class _Prefix:
    """A group's shared prefix: its keys/values per layer, its timing alone, how many rows still need it."""

    length: int
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    timing: SingleCallTiming
    pending: int


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
    tokenizer and PyTorch already take about 1.7x the weights of a 270M model with a 262k vocabulary,
    and a run should stay under 2x) and never more than a quarter of the free RAM; on CUDA half the
    free device memory."""
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


def output_logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The model's output layer on hidden states of shape (rows, hidden), final soft-capping as the model
    applies it. On CPU as `W @ h.T`: with a 262k-token vocabulary and a handful of rows, `linear(h, W)`
    picks a kernel that is 2x slower at 4-12 rows (measured on this machine, BENCHMARKS.md)."""
    head = model.get_output_embeddings()
    if hidden.device.type == "cpu" and getattr(head, "bias", None) is None:
        logits = torch.mm(head.weight, hidden.t()).t()
    else:
        logits = head(hidden)
    cap = getattr(model.config.get_text_config(decoder=True), "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


class PrefixBatcher:
    """Runs greedy decoding on one device for rows of token ids; see the module docstring."""

    def __init__(self, model: Any, tokenizer: Any, device: str, budget_bytes: int | None = None) -> None:
        self.model = model
        self.decoder = model.get_decoder()
        self.tokenizer = tokenizer
        self.device = device
        cfg = model.config.get_text_config(decoder=True)
        layer_types = getattr(cfg, "layer_types", None) or []
        self.window: int | None = getattr(cfg, "sliding_window", None) if "sliding_attention" in layer_types else None
        eos = model.generation_config.eos_token_id
        self.eos = set([eos] if isinstance(eos, int) else list(eos or []))
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.token_bytes = kv_bytes_per_token(model)
        self.row_logit_bytes = 3 * int(cfg.vocab_size) * next(model.parameters()).element_size() // 2
        self.budget = budget_bytes if budget_bytes is not None else memory_budget(model, device)
        self.max_batch = _CUDA_MAX_BATCH if device.startswith("cuda") else _CPU_MAX_BATCH

    # -- public -----------------------------------------------------------------------------------

    def complete(self, rows: Sequence[Row]) -> Iterator[dict[int, Generated]]:
        """Generated tokens and modelled latency by row index, one dict per batch as it finishes."""
        if not rows:
            return
        members: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            members.setdefault(row.group, []).append(i)
        shared = {g: shared_length([rows[i] for i in idx], self.window) for g, idx in members.items()}
        prefixes: dict[int, _Prefix] = {}
        own = [len(r.ids) - shared[r.group] for r in rows]
        order = sorted(range(len(rows)), key=lambda i: (own[i], len(rows[i].ids), i))
        for batch in self._batches(rows, order, own):
            for g in {rows[i].group for i in batch} - prefixes.keys():
                prefixes[g] = self._prefix(rows[members[g][0]], shared[g], len(members[g]))
            tokens: dict[int, list[int]] = {}
            self._run_batch(rows, batch, prefixes, tokens)
            out = {}
            for i, generated in tokens.items():
                prefix = prefixes[rows[i].group]
                out[i] = Generated(generated, prefix.timing.latency(len(rows[i].ids), len(generated)))
                prefix.pending -= 1
            for g in [g for g, p in prefixes.items() if p.pending == 0]:
                prefixes[g].kv = []  # free the prefix's cache; the group has no rows left
            yield out

    # -- internals --------------------------------------------------------------------------------

    def _batches(self, rows: Sequence[Row], order: list[int], own: list[int]) -> list[list[int]]:
        """Consecutive runs of rows (sorted by own length) whose worst-case cache fits the budget. A batch
        also ends where a row's own part is more than twice the batch's first (plus slack): shorter rows
        would re-feed that many prefix tokens."""
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for index in order:
            row = rows[index]
            longest = max(longest, len(row.ids) + row.max_new_tokens) if current else len(row.ids) + row.max_new_tokens
            cost = (len(current) + 1) * (longest * self.token_bytes + self.row_logit_bytes)
            if current and (
                cost > self.budget or len(current) >= self.max_batch or own[index] > 2 * own[current[0]] + 16
            ):
                batches.append(current)
                current, longest = [], len(row.ids) + row.max_new_tokens
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def _run_batch(
        self, rows: Sequence[Row], batch: list[int], prefixes: dict[int, _Prefix], out: dict[int, list[int]]
    ) -> None:
        try:
            for index, tokens in zip(batch, self._decode(rows, batch, prefixes), strict=True):
                out[index] = tokens
        except torch.OutOfMemoryError:
            # Only CUDA reports running out of memory (a CPU process is killed): halve and retry.
            if len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            self.budget //= 2
            half = len(batch) // 2
            self._run_batch(rows, batch[:half], prefixes, out)
            self._run_batch(rows, batch[half:], prefixes, out)

    def _prefix(self, row: Row, shared: int, rows: int) -> _Prefix:
        """A group's prefix run once (batch of one, logits at its last position only) and timed, then the
        group's first row continued alone for its own tokens and a few decoding steps, timed: together
        the wall time of that call alone, which every row of the group scales to its own lengths."""
        with torch.inference_mode():
            started = time.perf_counter()
            kv: list[tuple[torch.Tensor, torch.Tensor]] = []
            if shared:
                cache = growing_cache(self.model.config)
                ids = torch.tensor([list(row.ids[:shared])], device=self.device)
                self.decoder(input_ids=ids, cache=cache, use_cache=True)
                layers: list[Any] = list(cache.layers)
                kv = [(layer.keys, layer.values) for layer in layers]
            prefill_s = self._synchronised(started)
            timing = self._time_alone(row, shared, kv, prefill_s)
        return _Prefix(shared, kv, timing, rows)

    def _time_alone(
        self, row: Row, shared: int, kv: list[tuple[torch.Tensor, torch.Tensor]], prefix_s: float
    ) -> SingleCallTiming:
        cache = growing_cache(self.model.config, spare=len(row.ids) - shared + _TIMED_STEPS)
        for layer_idx, (keys, values) in enumerate(kv):
            cache.update(keys, values, layer_idx)  # copied into the cache's own room: the prefix stays
        started = time.perf_counter()
        hidden = self.decoder(input_ids=torch.tensor([list(row.ids[shared:])], device=self.device), cache=cache)
        token = output_logits(self.model, hidden.last_hidden_state[:, -1]).argmax(dim=-1)
        prefill_s = prefix_s + self._synchronised(started)
        steps = []
        for position in range(len(row.ids), len(row.ids) + _TIMED_STEPS):
            started = time.perf_counter()
            hidden = self.decoder(
                input_ids=token[:, None], position_ids=torch.tensor([[position]], device=self.device), cache=cache
            )
            token = output_logits(self.model, hidden.last_hidden_state[:, -1]).argmax(dim=-1)
            steps.append(self._synchronised(started))
        return SingleCallTiming(len(row.ids), prefill_s, statistics.median(steps))

    def _synchronised(self, started: float) -> float:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def _batch_cache(
        self, rows: Sequence[Row], batch: list[int], prefixes: dict[int, _Prefix], cached: list[int], spare: int
    ) -> Any:
        """Every row's prefix keys/values (its first `cached[r]` tokens), right-aligned in one cache."""
        cache = growing_cache(self.model.config, spare=spare)
        width = max(cached)
        sources = [(r, prefixes[rows[i].group].kv, n) for r, (i, n) in enumerate(zip(batch, cached, strict=True)) if n]
        for layer_idx in range(len(sources[0][1])):
            keys0, values0 = sources[0][1][layer_idx]
            batch_k = keys0.new_zeros((len(batch), keys0.shape[1], width, keys0.shape[3]))
            batch_v = values0.new_zeros((len(batch), values0.shape[1], width, values0.shape[3]))
            for r, kv, n in sources:
                batch_k[r, :, width - n :] = kv[layer_idx][0][0, :, :n]
                batch_v[r, :, width - n :] = kv[layer_idx][1][0, :, :n]
            cache.update(batch_k, batch_v, layer_idx)
        return cache

    def _decode(self, rows: Sequence[Row], batch: list[int], prefixes: dict[int, _Prefix]) -> list[list[int]]:
        device = self.device
        lengths = [len(rows[i].ids) for i in batch]
        shared = [prefixes[rows[i].group].length for i in batch]
        feed_width = max(n - s for n, s in zip(lengths, shared, strict=True))
        cached = [max(0, n - feed_width) for n in lengths]
        width = max(cached)
        spare = feed_width + max(rows[i].max_new_tokens for i in batch)
        if width:
            cache = self._batch_cache(rows, batch, prefixes, cached, spare)
        else:
            cache = growing_cache(self.model.config, spare=spare)
        # Row r: [pad x (width - cached)] cache | [pad x (feed_width - fed)] + its fed tokens.
        fed = [list(rows[i].ids[c:]) for i, c in zip(batch, cached, strict=True)]
        input_ids = torch.tensor([[self.pad_id] * (feed_width - len(f)) + f for f in fed], device=device)
        mask = torch.zeros((len(batch), width + feed_width), dtype=torch.long, device=device)
        positions = torch.zeros((len(batch), feed_width), dtype=torch.long, device=device)
        for r, n in enumerate(lengths):
            mask[r, width + feed_width - n :] = 1
            positions[r, feed_width - len(fed[r]) :] = torch.arange(cached[r], n, device=device)
        results = [Completion() for _ in batch]
        active = list(range(len(batch)))
        with torch.inference_mode():
            while True:
                hidden = self.decoder(
                    input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True
                ).last_hidden_state[:, -1]
                next_ids = output_logits(self.model, hidden).argmax(dim=-1)
                keep = self._advance(rows, batch, active, next_ids.tolist(), results)
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=device)
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
        """Whether a stop string now ends within the newest token, as `generate(stop_strings=...)` decides:
        checked at every step, the first occurrence is always in the newest token; it may start in the
        prompt's last tokens (a stop string straddling the seam)."""
        if not row.stop:
            return False
        context = list(row.ids[-_STOP_CONTEXT:])
        before = self._text(context + generated[:-1])
        text = self._text(context + generated)
        return any(text.find(s, max(0, len(before) - len(s) + 1)) >= 0 for s in row.stop)

    def _text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))
