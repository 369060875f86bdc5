"""Attention over prompt prefixes held once per batch instead of once per row.

Every single-mode call of a task starts with the same instruction and shots, every mixed call of a
group with the same demonstrations. In a batch, each row's cache holds only its own tokens (its query,
then its answer); the prefixes of the groups present sit once in a `PrefixBank`, and attention reads
both: a row attends to its group's segment of the bank, then to its own slots. A mixed row of the demo
then costs ~150 cache slots instead of ~600 (the prefix is 453 tokens), so three times as many rows
decode together in the same memory.

Which keys a query sees is decided from positions, not slots: bank slot `j` of a segment starting at
`offset` is position `j - offset`; a row's own slots are right-aligned and contiguous, so slot `s` of
`S` is position `last - (S - 1 - s)`, valid where the row's mask says so. A query at position `q` sees
a key at `k` when `k <= q` and, on sliding-window layers, `q - k < window`: the same keys as the call
run alone, however much padding the batch puts between prefix and own tokens.

The function is registered with transformers' `AttentionInterface` and takes over only when a forward
pass is given `roi_shared=...`; otherwise it is the model's own `sdpa` attention. `enable` switches a
model to it after checking, on the model itself, that a batch through the bank gives the hidden states
of the same prompts run whole (a model whose layers do not pass keyword arguments through, or that
adds anything to attention scores, fails the check and keeps the ordinary path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

NAME = "roi_shared_prefix"
_SCORES_BYTES = 8 * 2**20  # attention scores of one chunk of rows
KV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class PrefixBank:
    """The prefixes of some groups, one after another, per layer: keys and values `(1, kv heads, L, dim)`."""

    groups: tuple[int, ...]
    kv: KV
    segments: dict[int, tuple[int, int]]  # group -> (offset, length) in the bank

    @classmethod
    def of(cls, groups: Sequence[int], prefixes: dict[int, KV], lengths: dict[int, int]) -> PrefixBank:
        groups = tuple(sorted(set(groups)))
        segments, offset = {}, 0
        for g in groups:
            segments[g] = (offset, lengths[g])
            offset += lengths[g]
        present = [g for g in groups if lengths[g]]
        if len(present) == 1:  # the group's own tensors, not a copy
            return cls(groups, list(prefixes[present[0]]), segments)
        kv: KV = [
            (torch.cat([k for k, _ in parts], dim=2), torch.cat([v for _, v in parts], dim=2))
            for parts in zip(*(prefixes[g] for g in present), strict=True)
        ]
        return cls(groups, kv, segments)

    @property
    def length(self) -> int:
        return sum(n for _, n in self.segments.values())


@dataclass
class SharedAttention:
    """What one forward pass of a batch needs to attend over the bank and the rows' own slots."""

    bank: PrefixBank
    row_groups: list[int]
    valid: torch.Tensor  # (rows, own slots) 1 where a slot holds one of the row's tokens
    positions: torch.Tensor  # (rows, fed tokens) position of every fed token
    _masks: dict[tuple[int | None, int], torch.Tensor] = field(default_factory=dict)

    def attend(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        scaling: float,
        window: int | None,
    ) -> torch.Tensor:
        """Attention output `(rows, fed tokens, heads, dim)`, as transformers' attention functions return it.
        Rows go in chunks whose scores stay under `_SCORES_BYTES`: unlike sdpa's fused kernel this holds
        every score, which for many rows with long own parts over a long bank would raise the run's peak
        (BENCHMARKS.md, "Speed")."""
        rows, heads, fed, _ = query.shape
        per_row = heads * fed * (self.bank.length + key.shape[2]) * 4
        step = max(1, _SCORES_BYTES // per_row)
        visible = self._mask(window, key.shape[2])
        parts = [
            self._attend(
                layer, query[a : a + step], key[a : a + step], value[a : a + step], visible[a : a + step], scaling
            )
            for a in range(0, rows, step)
        ]
        return (parts[0] if len(parts) == 1 else torch.cat(parts)).transpose(1, 2).contiguous()

    def _attend(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        visible: torch.Tensor,
        scaling: float,
    ) -> torch.Tensor:
        # Everything in float32 whatever the model's precision, as sdpa's kernels keep scores: a bfloat16
        # score near 100 would be rounded by 0.5. A no-op for float32 models (the CPU path).
        dtype = query.dtype
        query, key, value = query.float(), key.float(), value.float()
        rows, heads, fed, dim = query.shape
        kv_heads, own = key.shape[1], key.shape[2]
        per_kv = heads // kv_heads
        q = query.reshape(rows, kv_heads, per_kv * fed, dim)  # query head h reads key/value head h // per_kv
        length = self.bank.length
        scores = torch.matmul(q, key.transpose(2, 3))
        if length:
            bank_k, bank_v = (t.float() for t in self.bank.kv[layer])
            scores = torch.cat([self._on_bank(q, bank_k[0].transpose(1, 2)), scores], dim=-1)
        scores = scores.view(rows, kv_heads, per_kv, fed, length + own).mul_(scaling)
        probs = scores.masked_fill_(~visible, float("-inf")).softmax(dim=-1)
        probs = probs.view(rows, kv_heads, per_kv * fed, -1)
        out = torch.matmul(probs[..., length:], value)
        if length:
            out += self._on_bank(probs[..., :length].contiguous(), bank_v[0])
        return out.view(rows, heads, fed, dim).to(dtype)

    @staticmethod
    def _on_bank(x: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """`x @ bank` per key/value head with every row's queries in one matrix product (the bank is the
        same for all rows): `x` is (rows, kv heads, n, a), `bank` (kv heads, a, b)."""
        rows, kv_heads, n, a = x.shape
        flat = x.transpose(0, 1).reshape(kv_heads, rows * n, a)
        return torch.matmul(flat, bank).view(kv_heads, rows, n, -1).transpose(0, 1)

    def _mask(self, window: int | None, own: int) -> torch.Tensor:
        """(rows, 1, 1, fed, bank + own) True where a query may see a key; computed once per layer kind."""
        if (window, own) in self._masks:
            return self._masks[(window, own)]
        device = self.positions.device
        q = self.positions[:, :, None]  # (rows, fed, 1)
        fed = q.shape[1]
        offsets = torch.tensor([self.bank.segments[g][0] for g in self.row_groups], device=device)
        lengths = torch.tensor([self.bank.segments[g][1] for g in self.row_groups], device=device)
        bank_pos = torch.arange(self.bank.length, device=device)[None, :] - offsets[:, None]
        in_segment = ((bank_pos >= 0) & (bank_pos < lengths[:, None]))[:, None, :]
        own_pos = self.positions[:, -1:] - torch.arange(own - 1, -1, -1, device=device)[None, :]
        valid = self.valid[:, -own:].bool()[:, None, :]
        seen_bank = in_segment & _in_reach(q, bank_pos[:, None, :], window)
        seen_own = valid & _in_reach(q, own_pos[:, None, :], window)
        # A padding query sees at least its own slot, so its (unused) output stays finite.
        seen_own |= torch.arange(own, device=device)[None, :] == torch.arange(own - fed, own, device=device)[:, None]
        mask = torch.cat([seen_bank, seen_own], dim=-1)[:, None, None]
        self._masks[(window, own)] = mask
        return mask


def _in_reach(query_pos: torch.Tensor, key_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    reach = key_pos <= query_pos
    return reach & (query_pos - key_pos < window) if window else reach


def attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    roi_shared: SharedAttention | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """An `AttentionInterface` function: the bank's when `roi_shared` is given, else `sdpa`'s."""
    if roi_shared is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
            sliding_window=sliding_window, **kwargs,
        )  # fmt: skip
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return roi_shared.attend(module.layer_idx, query, key, value, scale, sliding_window), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)


def supported(model: Any) -> bool:
    """Whether the model computes attention through transformers' `sdpa` function with nothing added to
    the scores (soft-capping would need its own path here)."""
    cfg = model.config.get_text_config(decoder=True)
    if getattr(cfg, "attn_logit_softcapping", None) or model.config._attn_implementation not in ("sdpa", NAME):
        return False
    return bool(getattr(model, "_can_set_attn_implementation", lambda: False)())


def placeholder_mask(rows: int, fed: int, device: Any) -> torch.Tensor:
    """What to pass as `attention_mask` with `roi_shared`: a 4D mask, which transformers hands to the
    attention function as it is instead of building one (`attention` ignores it)."""
    return torch.ones((rows, 1, fed, 1), dtype=torch.bool, device=device)


def enable(model: Any) -> bool:
    """Route the model's attention through `attention` (identical to `sdpa` without `roi_shared`) if a
    check on the model itself agrees; otherwise leave the model on sdpa. Whether it is on."""
    if not supported(model):
        return False
    if model.config._attn_implementation == NAME:
        return True  # switched on by an earlier batcher, after the check
    _register()
    model.set_attn_implementation(NAME)
    try:
        if _agrees(model):
            return True
    except Exception:  # a model this function cannot serve may fail the check any way it likes
        pass
    model.set_attn_implementation("sdpa")
    return False


def _agrees(model: Any) -> bool:
    """Two prompts with a common prefix, each run whole, against a batch of their own parts over a bank
    holding the prefix once: the last hidden states must agree to float32 rounding."""
    from transformers import DynamicCache

    decoder, device = model.get_decoder(), model.device
    vocab = int(model.config.get_text_config(decoder=True).vocab_size)
    prefix = [t % vocab for t in (2, 1000, 2000, 3000, 4000, 5000)]
    owns = [[6000 % vocab, 7000 % vocab], [8000 % vocab, 9000 % vocab, 10000 % vocab]]
    width, start = max(len(o) for o in owns), len(prefix)
    with torch.inference_mode():
        alone = [decoder(input_ids=torch.tensor([prefix + o], device=device)).last_hidden_state[0, -1] for o in owns]
        cache = DynamicCache(config=model.config)
        decoder(input_ids=torch.tensor([prefix], device=device), cache=cache, use_cache=True)
        layers: list[Any] = list(cache.layers)
        bank = PrefixBank.of([0], {0: [(layer.keys, layer.values) for layer in layers]}, {0: start})
        ids = torch.tensor([[prefix[0]] * (width - len(o)) + o for o in owns], device=device)
        valid = torch.tensor([[0] * (width - len(o)) + [1] * len(o) for o in owns], device=device)
        positions = torch.tensor([[start] * (width - len(o)) + list(range(start, start + len(o))) for o in owns])
        shared = SharedAttention(bank, [0, 0], valid, positions.to(device))
        batch = decoder(
            input_ids=ids, attention_mask=placeholder_mask(len(owns), width, device), position_ids=positions.to(device),
            cache=DynamicCache(config=model.config), use_cache=True, roi_shared=shared,
        ).last_hidden_state[:, -1]  # fmt: skip
    tolerance = 1e-3 if batch.dtype == torch.float32 else 5e-2
    return all(
        bool(torch.allclose(batch[r].float(), a.float(), rtol=tolerance, atol=tolerance * float(a.abs().max())))
        for r, a in enumerate(alone)
    )
