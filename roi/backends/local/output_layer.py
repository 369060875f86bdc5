"""The output layer's greedy choice: the argmax over the vocabulary of `W @ h`, as the model's own
`lm_head` and `argmax` give it, at a fraction of the float32 cost on CPU.

Gemma 3's output layer is its 262k x 640 embedding matrix: 670 MB in float32, read at every decoding
step, and with a handful of rows the largest part of a step (measured at 9 rows: 99 of ~180 ms). A
half-precision copy (half the bytes) screens the vocabulary, and float64 decides among the few tokens
the screen cannot rule out:

    s~ = fp16(W) @ fp16(h)                        one pass over 335 MB, float32 accumulation
    |s - s~| <= m  for every token                a bound from the rounding of W, h and the output
    candidates = { v : s~_v >= max(s~) - 2m }     always holds the true argmax
    choice = argmax over candidates of W_v @ h    float64, first index on ties, as `argmax` does

`m = 2 x (E|h| + N|h - fp16(h)| + (d u32 + u16) N |fp16(h)| + 2 d u32 N |h| + 2^-25)`, with `E` the
largest row norm of `W - fp16(W)`, `N` the largest row norm of `fp16(W)` (both computed from the
weights), `d` the hidden size, `u` the unit roundoff and 2^-25 the absolute error of a float16
subnormal; the factor 2 is a safety margin. The bound assumes float32 accumulation in the float16
product (what PyTorch's CPU kernels do); tests/backends/local/test_output_layer.py checks it against float64 logits
of real hidden states. The decision is the true argmax of `W h` whatever rows share the batch; a
float32 product over the whole vocabulary (the naive path) can differ from it only where two logits
are within float32 rounding of each other (none in the benchmark's 170 calls).

So that the copy costs no memory, the float32 matrix is then read from the model's safetensors file
through a private memory map instead of the loaded matrix, and the pages a lookup (input tokens,
candidates) faults in are dropped right after it: a fault maps more than the row it needs (the
kernel's fault-around, and whole 2 MB folios when the file was just written: measured 200 random
lookups leaving 283 MB resident), and a few thousand distinct tokens would make most of the matrix
resident again. Dropping them costs ~3 us plus the next faults (~0.1 ms for a decoding step of 12
rows, 1-3 ms for a 700-token prefill). The screen is used only on CPU, for float32 models without logit
soft-capping or bias whose embedding is found in a float32 safetensors file; otherwise the float32
product runs a vocabulary slice at a time.
"""

from __future__ import annotations

import json
import mmap
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

_VOCAB_CHUNK = 16384  # output-layer rows per slice of the exact path
_U16, _U32 = 2.0**-11, 2.0**-24  # unit roundoff of float16 and float32
_HALF_TINY = 2.0**-25  # half the spacing of float16's subnormals
_SAFETY = 2.0


def output_logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The model's output layer on hidden states of shape (rows, hidden), final soft-capping as the model
    applies it. On CPU as `W @ h.T`: with a 262k-token vocabulary and a handful of rows, `linear(h, W)`
    picks a kernel that is 2x slower at 4-12 rows (measured on this machine, BENCHMARKS.md)."""
    head = model.get_output_embeddings()
    if hidden.device.type == "cpu" and getattr(head, "bias", None) is None:
        logits = torch.mm(head.weight, hidden.t()).t()
    else:
        logits = head(hidden)
    return softcap(model, logits)


def softcap(model: Any, logits: torch.Tensor) -> torch.Tensor:
    """The model's final logit soft-capping (Gemma 2 style), as its own forward applies it; none here."""
    cap = _cap(model)
    return torch.tanh(logits / cap) * cap if cap else logits


def _cap(model: Any) -> float | None:
    return getattr(model.config.get_text_config(decoder=True), "final_logit_softcapping", None)


def sliced_greedy(model: Any, hidden: torch.Tensor, chunk: int = _VOCAB_CHUNK) -> torch.Tensor:
    """The argmax of `output_logits(model, hidden)` per row, computed a slice of the vocabulary at a time
    on CPU, so a step holds 16k logits per row instead of 262k (with drafts, 5 positions x 8 rows of
    full logits took ~85 MB of peak memory) at the same speed; the first index wins ties, as in
    `argmax`."""
    head = model.get_output_embeddings()
    if hidden.device.type != "cpu" or getattr(head, "bias", None) is not None:
        return output_logits(model, hidden).argmax(dim=-1)
    weight = head.weight
    best_value, best_index = softcap(model, torch.mm(weight[:chunk], hidden.t())).max(dim=0)
    for start in range(chunk, weight.shape[0], chunk):
        value, index = softcap(model, torch.mm(weight[start : start + chunk], hidden.t())).max(dim=0)
        better = value > best_value  # strictly: an earlier slice keeps a tie
        best_value = torch.where(better, value, best_value)
        best_index = torch.where(better, index + start, best_index)
    return best_index


@dataclass(frozen=True)
class Screen:
    """A float16 copy of the output matrix and the constants of its error bound (module docstring)."""

    half: torch.Tensor  # (vocab, hidden) float16
    row_error: float  # E: the largest row norm of W - fp16(W)
    row_norm: float  # N: the largest row norm of fp16(W)

    @classmethod
    def of(cls, weight: torch.Tensor, done: Callable[[int, int], None] = lambda a, b: None) -> Screen:
        """The copy and its constants, a slice of rows at a time (`done(first, end)` after each: the
        mapped matrix lets those rows' pages go, so building never holds both whole matrices)."""
        half = torch.empty(weight.shape, dtype=torch.float16)
        error = norm = 0.0
        for start in range(0, weight.shape[0], _VOCAB_CHUNK):
            part = weight[start : start + _VOCAB_CHUNK]
            half[start : start + _VOCAB_CHUNK] = part.to(torch.float16)
            back = half[start : start + _VOCAB_CHUNK].to(torch.float64)
            error = max(error, float((part.to(torch.float64) - back).norm(dim=1).max()))
            norm = max(norm, float(back.norm(dim=1).max()))
            done(start, start + part.shape[0])
        return cls(half, error, norm)

    def margins(self, hidden: torch.Tensor, half_hidden: torch.Tensor) -> torch.Tensor:
        """m per row: a bound on |s - s~| for every token (module docstring), in float64."""
        h = hidden.to(torch.float64)
        hh = half_hidden.to(torch.float64)
        size = hidden.shape[-1]
        h_norm, hh_norm = h.norm(dim=-1), hh.norm(dim=-1)
        m: torch.Tensor = self.row_error * h_norm + self.row_norm * (h - hh).norm(dim=-1)
        m += (size * _U32 + _U16) * self.row_norm * hh_norm * (1 + 1e-3) + 2 * size * _U32 * self.row_norm * h_norm
        m += _HALF_TINY  # a float16 result in the subnormal range is off by up to this, absolutely
        return _SAFETY * m

    def candidates(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(token ids, mask): the tokens that may be some row's argmax (ascending) and, per row, which of
        them are its own candidates; None when float16 cannot hold the values (the exact path then runs)."""
        half_hidden = hidden.to(torch.float16)
        approx = torch.nn.functional.linear(half_hidden, self.half)  # (rows, vocab)
        best = approx.max(dim=1).values
        if not bool(torch.isfinite(best).all()) or not bool(torch.isfinite(half_hidden).all()):
            return None
        floor = _half_at_most(best.to(torch.float64) - 2 * self.margins(hidden, half_hidden))
        ids = (approx >= floor[:, None]).any(dim=0).nonzero().squeeze(1)
        return ids, approx[:, ids] >= floor[:, None]


def _half_at_most(values: torch.Tensor) -> torch.Tensor:
    """float16 values no greater than `values` (float64): a comparison in float16 keeps every token the
    float64 threshold keeps, and at most a few more."""
    half = values.to(torch.float16)
    above = half.to(torch.float64) > values
    return torch.where(above, torch.nextafter(half, torch.full_like(half, float("-inf"))), half)


class OutputLayer:
    """Greedy tokens from final hidden states: screened on CPU when possible (module docstring), else
    the exact float32 product a vocabulary slice at a time."""

    def __init__(self, model: Any, screen: Screen | None = None, mapped: MappedMatrix | None = None) -> None:
        self.model = model
        self.screen = screen
        self.mapped = mapped  # the float32 matrix, when it is read from its file
        self._hook = None if mapped is None else model.get_input_embeddings().register_forward_hook(self._release)

    @classmethod
    def for_model(cls, model: Any, model_dir: Path | None, device: str) -> OutputLayer:
        """Screened when the model qualifies and its float32 embedding maps from its safetensors file
        (then the heap copy of the matrix is released)."""
        head = model.get_output_embeddings()
        weight = head.weight
        qualifies = (
            device == "cpu"
            and model_dir is not None
            and weight.dtype == torch.float32
            and getattr(head, "bias", None) is None
            and _cap(model) is None
            and weight is model.get_input_embeddings().weight
        )
        if not qualifies:
            return cls(model)
        assert model_dir is not None
        mapped = mapped_matrix(model_dir, weight.detach())
        if mapped is None:
            return cls(model)
        screen = Screen.of(mapped.tensor, mapped.release)  # reading the rows made their pages resident
        shared = torch.nn.Parameter(mapped.tensor, requires_grad=False)
        model.get_input_embeddings().weight = shared
        head.weight = shared  # tied, as loaded
        return cls(model, screen, mapped)

    def _release(self, *_: Any) -> None:
        """After a lookup in the mapped matrix: its pages go (module docstring)."""
        if self.mapped is not None:
            self.mapped.release()

    def greedy(self, hidden: torch.Tensor) -> torch.Tensor:
        """The argmax token per row of `hidden` (rows, hidden size)."""
        found = self.screen.candidates(hidden) if self.screen is not None else None
        if found is None:
            return sliced_greedy(self.model, hidden)
        ids, mine = found
        rows = self.model.get_output_embeddings().weight[ids].to(torch.float64)
        self._release()
        exact = torch.mm(hidden.to(torch.float64), rows.t())  # (rows, candidates), the same in any batch
        exact = exact.masked_fill(~mine, float("-inf"))
        return ids[exact.argmax(dim=1)]  # ids ascending: the first index wins ties

    def unscreen(self) -> None:
        """Drop the float16 copy (for work that reads the whole float32 matrix anyway, such as the
        probe's full softmax: holding both would cost more memory than the copy saves); greedy choices
        go through the float32 slices from then on, and the matrix's pages stay resident (they are all
        read at every step)."""
        self.screen = None
        self.mapped = None
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def resident_saving(self) -> int:
        """Bytes of resident memory the screen saves: the float32 matrix stays in its file (the pages a
        lookup reads are dropped after it), its float16 copy takes half."""
        if self.screen is None or not sys.platform.startswith("linux"):
            return 0  # elsewhere MADV_DONTNEED is a hint at best: the mapped pages may all stay resident
        weight = self.model.get_output_embeddings().weight
        return int(weight.numel() * weight.element_size() - self.screen.half.numel() * self.screen.half.element_size())

    def row_bytes(self) -> int:
        """Transient bytes per row a greedy step holds (the budget counts them)."""
        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        if self.screen is not None:
            return vocab * (2 + 1)  # float16 scores and the candidate mask
        return 2 * _VOCAB_CHUNK * int(self.model.get_output_embeddings().weight.element_size())


@dataclass
class MappedMatrix:
    """A float32 matrix read from a safetensors file through a private mapping (copy-on-write, never
    written back): pages become resident as rows are read, and `release` lets them go again."""

    tensor: torch.Tensor
    mapping: mmap.mmap
    offset: int  # of row 0 in the mapping, in bytes

    def release(self, first: int = 0, end: int | None = None) -> None:
        """Drop the resident pages of rows [first, end) (all by default); reading them again faults them
        back in from the file (usually still in the OS page cache)."""
        if not hasattr(mmap, "MADV_DONTNEED"):  # Windows: the OS reclaims the pages when it needs to
            return
        row = self.tensor.shape[1] * self.tensor.element_size()
        end = self.tensor.shape[0] if end is None else end
        start = (self.offset + first * row) // mmap.PAGESIZE * mmap.PAGESIZE
        self.mapping.madvise(mmap.MADV_DONTNEED, start, self.offset + end * row - start)


def mapped_matrix(model_dir: Path, like: torch.Tensor) -> MappedMatrix | None:
    """The embedding matrix `like` as stored in the directory's safetensors files; None unless a float32
    tensor of the same shape whose sampled rows equal `like` is found."""
    for path in sorted(model_dir.glob("*.safetensors")):
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
            for name, entry in header.items():
                if not name.endswith("embed_tokens.weight") or entry.get("dtype") != "F32":
                    continue
                if list(entry["shape"]) != list(like.shape):
                    continue
                begin, end = entry["data_offsets"]
                whole = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
                array = np.frombuffer(whole, dtype=np.float32, count=(end - begin) // 4, offset=8 + size + begin)
                tensor = torch.from_numpy(array.reshape(like.shape))
                rows = _sample_rows(like.shape[0])
                if torch.equal(tensor[rows], like[rows]):
                    return MappedMatrix(tensor, whole, 8 + size + begin)
    return None


def _sample_rows(count: int) -> torch.Tensor:
    """Rows to compare: 16 at each end and in the middle. In runs, not spread out: each row read from
    `like` (itself usually a view of the file's mapping made by transformers, never released) may
    map a whole 2 MB folio; 65 spread rows kept 124 MB resident."""
    starts = sorted({0, max(0, count // 2 - 8), max(0, count - 16)})
    rows: torch.Tensor = torch.unique(torch.cat([torch.arange(s, min(s + 16, count)) for s in starts]))
    return rows
