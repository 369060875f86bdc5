"""Greedy generation for many prompts: each shared prompt prefix runs once, every row decodes in one
continuously refilled batch.

Rows carry a `group`; the rows of a group share a prompt prefix (a task's instruction and shots, a
mixed group's demonstrations), which runs once as a batch of one and whose keys/values every row of
the group reuses. Rows are sorted by the length of their own part (the tokens after their group's
prefix) and join one running batch as the memory budget allows: the single-mode calls of every task
decode together (the weights are read once per step for all of them), and a row that finishes makes
room for the next one instead of idling until the longest answer of its batch ends.

Where the model passes `shared_prefix.enable`'s check (Gemma 3 does), a batch holds the prefixes of
its groups once, in a `PrefixBank`, and each row's cache only its own tokens: rows that join together
feed their own parts left-padded to the longest, and attention decides from positions which bank and
own slots a query sees (roi/backends/local/shared_prefix.py). Elsewhere each row holds its own copy of its
prefix, laid out so that transformers' own attention masks are right. Rows that join together then
start with this layout (width `F` = their longest own part, row r has `n_r` tokens):

    KV cache   [ 0 ... 0 | prefix_r[: n_r - F] ]     right-aligned, left padding masked out
    new input  [ ids_r[n_r - F :] ]                  every row feeds the same F tokens

and are then merged into the running batch, the narrower side left-padded. So every row is always an
ordinary left-padded sequence: its real tokens are contiguous, positions are 0..n_r-1 as in a
batch-of-one call, and Gemma 3's sliding-window layers (window counted in cache slots) see exactly the
tokens they would see alone. Padding between prefix and suffix would be simpler but shifts the window
by the padding on long prompts, which changes answers. A row whose own part is shorter than F
re-feeds the last prefix tokens that makes room for. Both layouts keep a row's own slots contiguous and
right-aligned, so merging batches, dropping finished rows and rolling rejected draft tokens into the
padding are the same for both.

Hidden states and logits are computed for the last position only; a row leaves the batch as soon as
it stops (end of sequence, one of its stop strings, or its token budget).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from roi.backends.local import shared_prefix
from roi.backends.local.growing_cache import all_rollable, growing_cache, merged_cache, right_aligned, roll_rows
from roi.backends.local.memory import trim_heap
from roi.backends.local.output_layer import OutputLayer
from roi.backends.local.shared_prefix import PrefixBank, SharedAttention
from roi.backends.text import answer_text

_CPU_MAX_BATCH = 64  # past this a 2-8 core CPU is compute-bound: bigger batches only cost memory
_CUDA_MAX_BATCH = 256
_STOP_CONTEXT = 8  # prompt tokens decoded with the answer, so a stop string may straddle the seam
_TIMED_STEPS = 3  # decoding steps timed in a batch of one (their median is the step time)
_DRAFT_TOKENS = 4  # tokens of a prompt-lookup draft
_DRAFT_ROWS = 8  # speculate only this few rows: with more the output layer is compute-bound
_MIN_BUDGET = 64 * 2**20  # bytes: below this a batch could not hold a long prompt
_JOIN_TOKENS = 1024  # tokens fed in one pass when rows join over a prefix bank


@dataclass(frozen=True)
class Row:
    """One prompt to complete: its token ids, token budget, stop strings and prefix group."""

    ids: tuple[int, ...]
    max_new_tokens: int
    stop: tuple[str, ...]
    group: int = 0
    complete: Callable[[str], bool] | None = None  # on the decoded answer: it holds everything needed


@dataclass(frozen=True)
class Generated:
    """A finished row: its token ids (stop token included, as `generate` returns them), the modelled
    latency of the call run alone, and the machine time it took in its batch (see `_Charges`)."""

    tokens: list[int]
    latency_s: float
    machine_s: float = 0.0


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
    """A group's shared prefix: its keys/values per layer, its timing alone, how many rows still need it,
    the seconds its one pass took and the seconds spent only timing a call alone (not production work)."""

    length: int
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    timing: SingleCallTiming
    pending: int
    compute_s: float = 0.0
    timing_only_s: float = 0.0


class _Charges:
    """Machine time charged to rows: every pass of the loop is timed and its seconds split among the rows
    it computed, in proportion to the tokens each fed (a decoding step feeds one per row; a join feeds
    each row's own part); a group's prefix pass is split evenly among the group's rows. The passes that
    only time a call alone (for the modelled latency) are charged to nobody: production would not run
    them. The rows' charges add up to the batch's machine time less that measurement."""

    def __init__(self, rows: int) -> None:
        self.spent = [0.0] * rows

    def split(self, seconds: float, weights: dict[int, float]) -> None:
        total = sum(weights.values())
        for index, weight in weights.items():
            self.spent[index] += seconds * weight / total if total > 0 else seconds / len(weights)


@dataclass
class _Batch:
    """Rows decoding together: one cache, each row right-aligned in it, one token fed per step."""

    index: list[int]  # row indices
    cache: Any
    mask: torch.Tensor  # (rows, slots): 1 where a slot holds one of the row's tokens
    positions: torch.Tensor  # (rows, 1): position of the last token fed
    tokens: list[list[int]]  # generated so far, per row
    longest: int  # the most slots the batch may reach: its width plus the largest token budget left
    bank: PrefixBank | None = None  # the rows' prefixes when held once (the cache holds own tokens only)


def _left_pad(mask: torch.Tensor, width: int) -> torch.Tensor:
    return torch.cat([mask.new_zeros((mask.shape[0], width - mask.shape[1])), mask], dim=1)


def draft(tokens: list[int], size: int, longest_ngram: int = 3) -> list[int]:
    """Prompt lookup: the `size` tokens that followed the latest earlier occurrence of the sequence's last
    3 (else 2, else 1) tokens; empty when there is none. Mixed answers echo their task and input, and a
    looping answer repeats itself, so such drafts are often right."""
    for n in range(min(longest_ngram, len(tokens) - 1), 0, -1):
        tail = tokens[-n:]
        for start in range(len(tokens) - n - 1, -1, -1):
            if tokens[start : start + n] == tail:
                return tokens[start + n : start + n + size]
    return []


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


def memory_budget(model: Any, device: str, output: OutputLayer | None = None) -> int:
    """Bytes a batch's cache and logits may take. On CPU a fifth of the model's size (weights, the
    tokenizer and PyTorch take most of what a run may use, and a run should stay under twice the
    model's size) plus `screen_credit` (half of what the screened output layer keeps off the heap; the
    peaks measured with and without it are in BENCHMARKS.md, "Speed"). Never more than a quarter of
    the free RAM; on CUDA half the free device memory."""
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info()
        return int(free // 2)
    budget = model_bytes(model) // 5 + (screen_credit(output) if output is not None else 0)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        budget = min(budget, available // 4)
    except (ValueError, OSError):
        pass
    return max(budget, _MIN_BUDGET)


def screen_credit(output: OutputLayer) -> int:
    """What the batch budget gains from a screened output layer (see `memory_budget`)."""
    return output.resident_saving() // 2


class PrefixBatcher:
    """Runs greedy decoding on one device for rows of token ids; see the module docstring."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: str,
        budget_bytes: int | None = None,
        *,
        speculate: bool = True,
        max_batch: int | None = None,
        output: OutputLayer | None = None,
        share_prefixes: bool = True,
    ) -> None:
        self.speculate = speculate
        self.model = model
        # Prefixes held once per batch (roi/backends/local/shared_prefix.py) where the model passes the check.
        self.shared = share_prefixes and shared_prefix.enable(model)
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
        self.output = output or OutputLayer(model)
        # Transient memory per row of a greedy step (x5 positions with drafts); all logits on CUDA.
        elem = next(model.parameters()).element_size()
        cuda_logits = 2 * int(cfg.vocab_size) * elem
        self.row_logit_bytes = (
            cuda_logits if device.startswith("cuda") else (1 + _DRAFT_TOKENS) * self.output.row_bytes()
        )
        self._budget_given = budget_bytes
        self.budget = budget_bytes if budget_bytes is not None else memory_budget(model, device, self.output)
        self._steps_measured: dict[int, float] = {}  # median step s by prompt length class
        self._first_measured: dict[int, float] = {}  # s of a prefill's last token and its logits, by class
        self.max_batch = max_batch or (_CUDA_MAX_BATCH if device.startswith("cuda") else _CPU_MAX_BATCH)

    # -- public -----------------------------------------------------------------------------------

    def release_screen(self) -> None:
        """Drop the output layer's 16-bit copy (`OutputLayer.unscreen`) and the budget it allowed."""
        self.output.unscreen()
        if self._budget_given is None:
            self.budget = memory_budget(self.model, self.device, self.output)

    def complete(self, rows: Sequence[Row]) -> Iterator[dict[int, Generated]]:
        """Generated tokens and modelled latency by row index, yielded as rows finish."""
        if not rows:
            return
        members: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            members.setdefault(row.group, []).append(i)
        shared = {g: shared_length([rows[i] for i in idx], self.window) for g, idx in members.items()}
        own = [len(r.ids) - shared[r.group] for r in rows]
        pending = deque(sorted(range(len(rows)), key=lambda i: (own[i], len(rows[i].ids), i)))
        prefixes: dict[int, _Prefix] = {}
        running: _Batch | None = None
        charges = _Charges(len(rows))
        while pending or running is not None:
            clock = time.perf_counter()
            admit = self._admissible(rows, running, pending, own)
            worked: dict[int, float] = {}  # rows this pass computed -> tokens each fed
            if admit:
                for g in {rows[i].group for i in admit} - prefixes.keys():
                    prefixes[g] = self._prefix(rows[members[g][0]], shared[g], len(members[g]))
                    charges.split(prefixes[g].compute_s, dict.fromkeys(members[g], 1.0))
                    clock += prefixes[g].compute_s + prefixes[g].timing_only_s
                try:
                    started = self._start(rows, admit, prefixes)
                except torch.OutOfMemoryError:
                    # Only CUDA reports running out of memory (a CPU process is killed): halve, retry.
                    if running is None and len(admit) == 1:
                        raise
                    torch.cuda.empty_cache()
                    self.budget //= 2
                    continue
                for _ in admit:
                    pending.popleft()
                running = started if running is None else self._merge(rows, running, started, prefixes)
                del started  # else a finished batch's cache lives on while the next one is built
                self._give_back()
                worked = {i: float(own[i]) for i in admit}
            elif running is not None:
                worked = dict.fromkeys(running.index, 1.0)
                self._step(rows, running)
            if running is None:
                continue
            finished = self._retire(rows, running)
            if not running.index:
                running = None
            if finished:
                self._give_back()
            if worked:
                charges.split(time.perf_counter() - clock, worked)
            if finished:
                yield self._generated(rows, finished, prefixes, charges)

    def _give_back(self) -> None:
        """Return the C heap's free pages once caches were rebuilt: blocks under the 2 MB mapping threshold
        (masks, small tensors) fragment it, and the peak of a whole run grows (BENCHMARKS.md)."""
        if self.device == "cpu":
            trim_heap()

    # -- scheduling -------------------------------------------------------------------------------

    def _row_bytes(self, slots: int, rows: int) -> int:
        return int(rows * (slots * self.token_bytes + self.row_logit_bytes))

    def _admissible(
        self, rows: Sequence[Row], running: _Batch | None, pending: deque[int], own: list[int]
    ) -> list[int]:
        """The next pending rows to join the running batch: as many as the memory budget allows (every row
        of a batch holds as many slots as its longest row, plus its own remaining budget of tokens; with
        prefixes held once a row's slots are its own tokens and the bank counts once), and only once a
        quarter of the batch could join (a join costs about one decoding step of everyone's time). New
        rows feed their own parts together, so a join also stops where a row's own part is more than twice
        the first's plus 16 tokens (shorter rows would feed that much padding or re-fed prefix tokens)."""
        held = 0 if running is None else len(running.index)
        longest = 0 if running is None else running.longest
        bank = {} if running is None or running.bank is None else {g: n for g, (_, n) in running.bank.segments.items()}
        admit: list[int] = []
        for index in pending:
            row = rows[index]
            total = max(longest, (own[index] if self.shared else len(row.ids)) + row.max_new_tokens)
            joined = {**bank, row.group: len(row.ids) - own[index]} if self.shared else {}
            # A bank of several groups is a copy of prefixes that also stay alive on their own.
            bank_tokens = sum(joined.values()) * (2 if len(joined) > 1 else 1)
            size = self._row_bytes(total, held + len(admit) + 1) + bank_tokens * self.token_bytes
            if (size > self.budget and held + len(admit) > 0) or held + len(admit) >= self.max_batch:
                break
            if admit and own[index] > 2 * own[admit[0]] + 16:
                break
            admit.append(index)
            longest, bank = total, joined
        if running is not None and len(admit) < min(len(pending), max(1, held // 4)):
            return []
        return admit

    def _generated(
        self, rows: Sequence[Row], finished: dict[int, list[int]], prefixes: dict[int, _Prefix], charges: _Charges
    ) -> dict[int, Generated]:
        out = {}
        for i, tokens in finished.items():
            prefix = prefixes[rows[i].group]
            out[i] = Generated(tokens, prefix.timing.latency(len(rows[i].ids), len(tokens)), charges.spent[i])
            prefix.pending -= 1
            if prefix.pending == 0:
                prefix.kv = []  # the group has no rows left: free its prefix cache
        return out

    # -- internals --------------------------------------------------------------------------------

    def _prefix(self, row: Row, shared: int, rows: int) -> _Prefix:
        """A group's prefix run once (batch of one, logits at its last position only) and timed, then
        what else the wall time of the group's first call alone needs, timed apart (`_time_alone`): every
        row of the group scales that timing to its own lengths."""
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
            started = time.perf_counter()
            timing = self._time_alone(row, shared, kv, prefill_s)
            timing_only_s = time.perf_counter() - started
        return _Prefix(shared, kv, timing, rows, prefill_s, timing_only_s)

    def _time_alone(
        self, row: Row, shared: int, kv: list[tuple[torch.Tensor, torch.Tensor]], prefix_s: float
    ) -> SingleCallTiming:
        """The timing of `row` as a call alone. A prefix of at least half the row, with one more token
        and its logits (timed once per prompt length class), stands for the whole prefill, its time
        scaled to the tokens fed; a shorter prefix is continued alone through the row's own tokens, timed.
        Decoding steps are timed once per class (`_step_time`). This work is measurement only: production
        would not run it, so the less of it the better."""
        length_class = len(row.ids).bit_length()
        scales = 2 * shared >= len(row.ids)
        if scales and length_class in self._first_measured:
            first_s, step_s = self._first_measured[length_class], self._steps_measured[length_class]
            return SingleCallTiming(shared + 1, prefix_s + first_s, step_s)
        fed = row.ids[shared : shared + 1] if scales else row.ids[shared:]
        cache = growing_cache(self.model.config, spare=len(fed) + _TIMED_STEPS)
        for layer_idx, (keys, values) in enumerate(kv):
            cache.update(keys, values, layer_idx)  # copied into the cache's own room: the prefix stays
        started = time.perf_counter()
        hidden = self.decoder(input_ids=torch.tensor([list(fed)], device=self.device), cache=cache)
        token = self.output.greedy(hidden.last_hidden_state[:, -1])
        own_s = self._synchronised(started)
        if scales:
            self._first_measured[length_class] = own_s
        step_s = self._step_time(length_class, shared + len(fed), cache, token)
        return SingleCallTiming(shared + len(fed), prefix_s + own_s, step_s)

    def _step_time(self, length_class: int, position: int, cache: Any, token: torch.Tensor) -> float:
        """Median of a few decoding steps of a batch of one from `position`, measured once per prompt
        length class (powers of two): a step reads every weight, so its time hardly depends on the
        prompt within a class, and each measurement holds the whole batch up for a few steps."""
        if length_class in self._steps_measured:
            return self._steps_measured[length_class]
        steps = []
        for at in range(position, position + _TIMED_STEPS):
            started = time.perf_counter()
            hidden = self.decoder(
                input_ids=token[:, None], position_ids=torch.tensor([[at]], device=self.device), cache=cache
            )
            token = self.output.greedy(hidden.last_hidden_state[:, -1])
            steps.append(self._synchronised(started))
        self._steps_measured[length_class] = statistics.median(steps)
        return self._steps_measured[length_class]

    def _synchronised(self, started: float) -> float:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def _start(self, rows: Sequence[Row], admit: list[int], prefixes: dict[int, _Prefix]) -> _Batch:
        """Admitted rows' caches built from their prefixes and their own parts fed (the first token of
        each). See the module docstring for the layout."""
        if self.shared:
            return self._start_shared(rows, admit, prefixes)
        device = self.device
        lengths = [len(rows[i].ids) for i in admit]
        shared = [prefixes[rows[i].group].length for i in admit]
        feed_width = max(n - s for n, s in zip(lengths, shared, strict=True))
        cached = [max(0, n - feed_width) for n in lengths]
        width = max(cached)
        spare = feed_width + max(rows[i].max_new_tokens for i in admit)
        cache = growing_cache(self.model.config, spare=spare)
        sources = [(r, prefixes[rows[i].group].kv, n) for r, (i, n) in enumerate(zip(admit, cached, strict=True)) if n]
        if sources:
            right_aligned(cache, len(admit), width, sources)
        # Row r: [pad x (width - cached)] cache | [pad x (feed_width - fed)] + its fed tokens.
        fed = [list(rows[i].ids[c:]) for i, c in zip(admit, cached, strict=True)]
        input_ids = torch.tensor([[self.pad_id] * (feed_width - len(f)) + f for f in fed], device=device)
        mask = torch.zeros((len(admit), width + feed_width), dtype=torch.long, device=device)
        positions = torch.zeros((len(admit), feed_width), dtype=torch.long, device=device)
        for r, n in enumerate(lengths):
            mask[r, width + feed_width - n :] = 1
            positions[r, feed_width - len(fed[r]) :] = torch.arange(cached[r], n, device=device)
        slots = width + feed_width + max(rows[i].max_new_tokens for i in admit)
        batch = _Batch(list(admit), cache, mask, positions[:, -1:], [[] for _ in admit], slots)
        with torch.inference_mode():
            self._forward(batch, input_ids, positions, rows)
        return batch

    def _start_shared(self, rows: Sequence[Row], admit: list[int], prefixes: dict[int, _Prefix]) -> _Batch:
        """Admitted rows with their prefixes in a bank (held once) and an empty cache of their own: each
        feeds its own part, left-padded to the longest (padding is masked; attention goes by positions,
        so it may sit between prefix and own tokens). At most `_JOIN_TOKENS` are fed in one pass, the
        rest in further passes merged in: a pass's activations grow with the tokens it feeds, and a pilot
        with many long mixed rows would join them all at once, none of it in the batch budget."""
        width = max(len(rows[i].ids) - prefixes[rows[i].group].length for i in admit)
        chunk = max(1, _JOIN_TOKENS // width)
        batch = self._start_chunk(rows, admit[:chunk], prefixes)
        for first in range(chunk, len(admit), chunk):
            batch = self._merge(rows, batch, self._start_chunk(rows, admit[first : first + chunk], prefixes), prefixes)
        return batch

    def _start_chunk(self, rows: Sequence[Row], admit: list[int], prefixes: dict[int, _Prefix]) -> _Batch:
        device = self.device
        groups = [rows[i].group for i in admit]
        bank = PrefixBank.of(groups, {g: prefixes[g].kv for g in groups}, {g: prefixes[g].length for g in groups})
        fed = [list(rows[i].ids[prefixes[g].length :]) for i, g in zip(admit, groups, strict=True)]
        width = max(len(f) for f in fed)
        input_ids = torch.tensor([[self.pad_id] * (width - len(f)) + f for f in fed], device=device)
        mask = torch.zeros((len(admit), width), dtype=torch.long, device=device)
        positions = torch.zeros((len(admit), width), dtype=torch.long, device=device)
        for r, (i, f) in enumerate(zip(admit, fed, strict=True)):
            mask[r, width - len(f) :] = 1
            positions[r, width - len(f) :] = torch.arange(len(rows[i].ids) - len(f), len(rows[i].ids), device=device)
        budget = max(rows[i].max_new_tokens for i in admit)
        cache = growing_cache(self.model.config, spare=budget)  # room past the fed tokens
        batch = _Batch(list(admit), cache, mask, positions[:, -1:], [[] for _ in admit], width + budget, bank)
        with torch.inference_mode():
            self._forward(batch, input_ids, positions, rows)
        return batch

    def _step(self, rows: Sequence[Row], batch: _Batch) -> None:
        """One decoding step: every row feeds the token it produced last. When few rows are left, rows
        also feed a draft of the tokens that follow (see `_verify`)."""
        if self.speculate and len(batch.index) <= _DRAFT_ROWS and all_rollable(batch.cache):
            drafts = [
                draft(list(rows[i].ids) + t, _DRAFT_TOKENS) for i, t in zip(batch.index, batch.tokens, strict=True)
            ]
            if any(drafts):
                self._verify(rows, batch, drafts)
                return
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.index), 1))], dim=1)
        batch.positions = batch.positions + 1
        input_ids = torch.tensor([[t[-1]] for t in batch.tokens], device=self.device)
        with torch.inference_mode():
            self._forward(batch, input_ids, batch.positions, rows)

    def _verify(self, rows: Sequence[Row], batch: _Batch, drafts: list[list[int]]) -> None:
        """Prompt-lookup speculative decoding, greedy: each row feeds its last token and its draft in one
        pass; the draft's tokens are kept while they equal the model's own greedy choice at each
        position, plus the model's choice after the last kept one. With a handful of rows a step is
        bound by reading the weights, so checking 1 + draft positions costs about as much as one. The
        rejected positions' keys/values are rolled to the row's left padding (masked), which keeps the
        row right-aligned and contiguous."""
        device = self.device
        width = max(len(d) for d in drafts)
        fed = [[t[-1], *d] + [self.pad_id] * (width - len(d)) for t, d in zip(batch.tokens, drafts, strict=True)]
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.index), width + 1))], dim=1)
        positions = batch.positions + 1 + torch.arange(width + 1, device=device)[None, :]
        with torch.inference_mode():
            hidden = self._decode(rows, batch, torch.tensor(fed, device=device), positions)
            choices = self.output.greedy(hidden.reshape(-1, hidden.shape[-1]))
        choices_by_row = choices.view(len(fed), width + 1).tolist()
        shifts, advance = [], []
        for r, (index, d, choice) in enumerate(zip(batch.index, drafts, choices_by_row, strict=True)):
            kept = 0
            while kept < len(d) and d[kept] == choice[kept]:
                kept += 1
            for token in choice[: kept + 1]:  # stop where the row would have stopped step by step
                batch.tokens[r].append(int(token))
                if self._done(rows[index], batch.tokens[r]):
                    break
            shifts.append(width - kept)
            advance.append(kept + 1)
        with torch.inference_mode():  # the cache's tensors are inference tensors
            roll_rows(batch.cache, shifts)
        for r, shift in enumerate(shifts):
            if shift:
                batch.mask[r] = torch.roll(batch.mask[r], shift)
                batch.mask[r, :shift] = 0
        batch.positions = batch.positions + torch.tensor(advance, device=device)[:, None]

    def _decode(self, rows: Sequence[Row], batch: _Batch, input_ids: torch.Tensor, positions: torch.Tensor) -> Any:
        """The decoder over the fed tokens (the batch's mask already covers them): hidden states."""
        if batch.bank is None:
            extra: dict[str, Any] = {"attention_mask": batch.mask}
        else:
            groups = [rows[i].group for i in batch.index]
            extra = {
                "attention_mask": shared_prefix.placeholder_mask(input_ids.shape[0], input_ids.shape[1], self.device),
                "roi_shared": SharedAttention(batch.bank, groups, batch.mask, positions),
            }
        return self.decoder(
            input_ids=input_ids, position_ids=positions, cache=batch.cache, use_cache=True, **extra
        ).last_hidden_state

    def _forward(self, batch: _Batch, input_ids: torch.Tensor, positions: torch.Tensor, rows: Sequence[Row]) -> None:
        hidden = self._decode(rows, batch, input_ids, positions)[:, -1]
        next_ids = self.output.greedy(hidden).tolist()
        for tokens, token in zip(batch.tokens, next_ids, strict=True):
            tokens.append(int(token))

    def _merge(self, rows: Sequence[Row], a: _Batch, b: _Batch, prefixes: dict[int, _Prefix]) -> _Batch:
        """One batch of both, right-aligned: the shorter one's rows get left padding (masked)."""
        width = max(a.mask.shape[1], b.mask.shape[1])
        index, tokens = a.index + b.index, a.tokens + b.tokens
        spare = max(rows[i].max_new_tokens - len(t) for i, t in zip(index, tokens, strict=True)) + 1
        cache = merged_cache(self.model.config, a.cache, b.cache, width, spare)
        mask = torch.cat([_left_pad(a.mask, width), _left_pad(b.mask, width)])
        positions = torch.cat([a.positions, b.positions])
        return _Batch(index, cache, mask, positions, tokens, width + spare, self._joined_bank(rows, a, b, prefixes))

    def _joined_bank(self, rows: Sequence[Row], a: _Batch, b: _Batch, prefixes: dict[int, _Prefix]) -> Any:
        """The bank of both batches' rows (`a`'s own when it holds every group needed)."""
        if a.bank is None or b.bank is None:
            return None
        groups = {rows[i].group for i in a.index + b.index}
        for bank in (a.bank, b.bank):
            if groups == set(bank.groups):
                return bank
        kv, lengths = {g: prefixes[g].kv for g in groups}, {g: prefixes[g].length for g in groups}
        return PrefixBank.of(sorted(groups), kv, lengths)

    def _retire(self, rows: Sequence[Row], batch: _Batch) -> dict[int, list[int]]:
        """Rows that stopped (end of sequence, a stop string, their token budget) leave the batch."""
        finished, keep = {}, []
        for k, (index, tokens) in enumerate(zip(batch.index, batch.tokens, strict=True)):
            if self._done(rows[index], tokens):
                finished[index] = tokens
            else:
                keep.append(k)
        if finished and keep:
            select = torch.tensor(keep, device=self.device)
            batch.cache.batch_select_indices(select)
            batch.mask, batch.positions = batch.mask[select], batch.positions[select]
        batch.index = [batch.index[k] for k in keep]
        batch.tokens = [batch.tokens[k] for k in keep]
        return finished

    def _done(self, row: Row, tokens: list[int]) -> bool:
        if tokens[-1] in self.eos or len(tokens) >= row.max_new_tokens or self._stopped(row, tokens):
            return True
        return row.complete is not None and row.complete(answer_text(self.tokenizer, tokens))

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
