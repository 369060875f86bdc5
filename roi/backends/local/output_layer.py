"""The output layer's greedy choice: the argmax over the vocabulary of `W @ h`, as the model's own
`lm_head` and `argmax` give it, at a fraction of the float32 cost on CPU.

Gemma 3's output layer is its 262k x 640 embedding matrix: 670 MB in float32, read at every decoding
step, and with a handful of rows the largest part of a step. A 16-bit copy (bfloat16 or float16: half
the bytes) screens the vocabulary, and float64 decides among the few tokens the screen cannot rule out:

    s~ = f(W) @ f(h)                              one pass over the copy, float32 accumulation
    |s - s~| <= m  for every token                a bound from the rounding of W, h and the output
    candidates = { v : s~_v >= max(s~) - 2m }     always holds the true argmax
    choice = argmax over candidates of W_v @ h    float64, first index on ties, as `argmax` does

`m = 2 x (E|h| + N|h - f(h)| + g_d N|f(h)| + u M / (1 - u) + 2 d u32 N |h| + t)`, with `f` the
rounding to the format, `E` the largest row norm of `W - f(W)`, `N` the largest row norm of `f(W)`
(both from the weights), `d` the hidden size, `g_d = d u32 / (1 - d u32)` the float32 accumulation's
error factor, `u` the format's unit roundoff (2^-8 for bfloat16, 2^-11 for float16: the output is
rounded to the format), `M` the row's largest |s~|, `t` half the spacing of the format's subnormals
(the absolute error of a result in that range) and the factor 2 a safety margin. The bound assumes
float32 accumulation in the 16-bit product, which roi/backends/local/precision.py checks on the
machine's kernels before it offers a format (tests/backends/local/test_output_layer.py checks the
bound against float64 logits of real hidden states for each format). The decision is the true argmax
of `W h` whatever the format and whatever rows share the batch; a float32 product over the whole
vocabulary (the naive path, and the `float32` precision here) can differ from it only where two
logits are within float32 rounding of each other.

Which format screens is chosen by timing on the machine at hand (roi/backends/local/precision.py):
on one CPU bfloat16 is the fastest, on another float16, and where neither beats the float32 product
the screen is not used at all.

So that the copy costs no memory, the float32 matrix is then read from the model's safetensors file
through a private memory map instead of the loaded matrix, and the pages a lookup (input tokens,
candidates) faults in are dropped right after it: a fault maps more than the row it needs (the
kernel's fault-around, and whole 2 MB folios when the file was just written), and a few thousand
distinct tokens would make most of the matrix resident again. Dropping them costs little beside the
next faults (BENCHMARKS.md, "Speed"). The screen is used only on CPU, for float32 models without logit
soft-capping or bias whose embedding is found in a float32 safetensors file; otherwise the float32
product runs a vocabulary slice at a time.
"""

from __future__ import annotations

import json
import math
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
_DECIDE_CHUNK = 4096  # candidates decided in float64 at once (20 MB of rows)
_U32 = 2.0**-24  # unit roundoff of float32
_SAFETY = 2.0


@dataclass(frozen=True)
class Format:
    """A 16-bit format the screen may use: its unit roundoff and half the spacing of its subnormals."""

    name: str
    dtype: torch.dtype
    unit_roundoff: float
    half_tiny: float


FORMATS = {
    f.name: f
    for f in (
        Format("bfloat16", torch.bfloat16, 2.0**-8, 2.0**-134),
        Format("float16", torch.float16, 2.0**-11, 2.0**-25),
    )
}
FLOAT32 = "float32"  # no screen: the float32 product a vocabulary slice at a time
PRECISIONS = (*FORMATS, FLOAT32)


def output_logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The model's output layer on hidden states of shape (rows, hidden), final soft-capping as the model
    applies it. On CPU as `W @ h.T`: with a 262k-token vocabulary and a handful of rows, `linear(h, W)`
    picks a slower kernel at a few rows (BENCHMARKS.md)."""
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
    on CPU, so a step holds 16k logits per row instead of 262k (with drafts, full logits of every
    position of every row would add to the peak memory) at the same speed; the first index wins ties, as in
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
    """A 16-bit copy of the output matrix and the constants of its error bound (module docstring)."""

    half: torch.Tensor  # (vocab, hidden) in the format
    row_error: float  # E: the largest row norm of W - f(W)
    row_norm: float  # N: the largest row norm of f(W)
    format: Format = FORMATS["float16"]

    @classmethod
    def of(
        cls,
        weight: torch.Tensor,
        fmt: Format | None = None,
        done: Callable[[int, int], None] = lambda a, b: None,
        constants: tuple[float, float] | None = None,
    ) -> Screen:
        """The copy and its constants, a slice of rows at a time (`done(first, end)` after each: the
        mapped matrix lets those rows' pages go, so building never holds both whole matrices).
        `constants`: (E, N) as an earlier `of` found them for the same matrix and format."""
        fmt = fmt or FORMATS["float16"]
        half = torch.empty(weight.shape, dtype=fmt.dtype)
        error = norm = 0.0
        for start in range(0, weight.shape[0], _VOCAB_CHUNK):
            part = weight[start : start + _VOCAB_CHUNK]
            half[start : start + _VOCAB_CHUNK] = part.to(fmt.dtype)
            if constants is None:
                error, norm = _row_norms(part, half[start : start + _VOCAB_CHUNK], error, norm)
            done(start, start + part.shape[0])
        if constants is not None:
            return cls(half, *constants, fmt)
        up = 1 + 2 * weight.shape[1] * _U32  # float32 sums of squares, then a square root
        return cls(half, error * up + fmt.half_tiny, norm * up, fmt)

    @property
    def constants(self) -> tuple[float, float]:
        return self.row_error, self.row_norm

    def usable(self) -> bool:
        """Whether every weight fits the format (float16 overflows past 65504: a row norm goes infinite)."""
        return math.isfinite(self.row_norm) and math.isfinite(self.row_error)

    def margins(self, hidden: torch.Tensor, half_hidden: torch.Tensor, largest: torch.Tensor) -> torch.Tensor:
        """m per row: a bound on |s - s~| for every token (module docstring), in float64; `largest` is the
        row's largest |s~|."""
        h = hidden.to(torch.float64)
        hh = half_hidden.to(torch.float64)
        size = hidden.shape[-1]
        u = self.format.unit_roundoff
        h_norm, hh_norm = h.norm(dim=-1), hh.norm(dim=-1)
        m: torch.Tensor = self.row_error * h_norm + self.row_norm * (h - hh).norm(dim=-1)
        m += size * _U32 / (1 - size * _U32) * self.row_norm * hh_norm * (1 + 1e-3)
        m += u / (1 - u) * largest.to(torch.float64) + 2 * size * _U32 * self.row_norm * h_norm
        m += self.format.half_tiny  # a result in the subnormal range is off by up to this, absolutely
        return _SAFETY * m

    def candidates(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(token ids, mask): the tokens that may be some row's argmax (ascending) and, per row, which of
        them are its own candidates; None when the format cannot hold the values (the exact path then runs)."""
        half_hidden = hidden.to(self.format.dtype)
        approx = torch.nn.functional.linear(half_hidden, self.half)  # (rows, vocab)
        low, best = torch.aminmax(approx, dim=1)
        if not bool(torch.isfinite(best).all() and torch.isfinite(low).all()):
            return None
        if not bool(torch.isfinite(half_hidden).all()):
            return None
        largest = torch.maximum(best.abs(), low.abs())
        floor = _at_most(best.to(torch.float64) - 2 * self.margins(hidden, half_hidden, largest), self.format.dtype)
        ids = (approx >= floor[:, None]).any(dim=0).nonzero().squeeze(1)
        return ids, approx[:, ids] >= floor[:, None]


def _row_norms(part: torch.Tensor, half: torch.Tensor, error: float, norm: float) -> tuple[float, float]:
    """The largest row norms so far of `W - f(W)` (exact in float32: f(W) is within a factor 2 of W,
    or 0) and of `f(W)`."""
    back = half.to(torch.float32)
    error = max(error, float(torch.linalg.vector_norm(part - back, dim=1).max()))
    return error, max(norm, float(torch.linalg.vector_norm(back, dim=1).max()))


def _at_most(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Values of `dtype` no greater than `values` (float64): a comparison in the format keeps every
    token the float64 threshold keeps, and at most a few more."""
    half = values.to(dtype)
    above = half.to(torch.float64) > values
    return torch.where(above, torch.nextafter(half, torch.full_like(half, float("-inf"))), half)


def read_through(model: Any, mapped: MappedMatrix) -> None:
    """The model's (tied) embedding and output matrix read through `mapped` from now on."""
    if model.get_output_embeddings().weight.data_ptr() != mapped.tensor.data_ptr():
        shared = torch.nn.Parameter(mapped.tensor, requires_grad=False)
        model.get_input_embeddings().weight = shared
        model.get_output_embeddings().weight = shared  # tied, as loaded


class OutputLayer:
    """Greedy tokens from final hidden states: screened on CPU when possible (module docstring), else
    the exact float32 product a vocabulary slice at a time."""

    def __init__(self, model: Any, screen: Screen | None = None, mapped: MappedMatrix | None = None) -> None:
        self.model = model
        self.screen = screen
        self.mapped = mapped  # the float32 matrix, when it is read from its file
        self._hook = None if mapped is None else model.get_input_embeddings().register_forward_hook(self._release)

    @classmethod
    def for_model(cls, model: Any, model_dir: Path | None, device: str, precision: str = "float16") -> OutputLayer:
        """Screened in `precision` when the model qualifies (`mappable`) and its weights fit the format,
        else the float32 product. roi/backends/local/precision.py chooses the format by timing."""
        mapped = cls.mappable(model, model_dir, device) if precision in FORMATS else None
        if mapped is None:
            return cls(model)
        screen = Screen.of(mapped.tensor, FORMATS[precision], mapped.release)
        return cls.screened(model, screen, mapped) if screen.usable() else cls(model)

    @staticmethod
    def mappable(model: Any, model_dir: Path | None, device: str) -> MappedMatrix | None:
        """The float32 output matrix read from its safetensors file, when a screen may stand in for it: on
        CPU, float32, no bias, no logit soft-capping, tied to the input embedding, found in the file."""
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
        return mapped_matrix(model_dir, weight.detach()) if qualifies and model_dir is not None else None

    @classmethod
    def screened(cls, model: Any, screen: Screen, mapped: MappedMatrix) -> OutputLayer:
        """The screen in use, the model's matrix read through the mapping (its heap copy released)."""
        read_through(model, mapped)
        return cls(model, screen, mapped)

    @property
    def precision(self) -> str:
        """The screen's format, or float32 when the float32 product decides alone."""
        return self.screen.format.name if self.screen is not None else FLOAT32

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
        weight, wide = self.model.get_output_embeddings().weight, hidden.to(torch.float64)
        best_value = best_index = None
        for start in range(0, ids.numel(), _DECIDE_CHUNK):  # a flat row may let thousands through
            part = ids[start : start + _DECIDE_CHUNK]
            exact = torch.mm(wide, weight[part].to(torch.float64).t())  # the same in any batch
            value, index = exact.masked_fill(~mine[:, start : start + _DECIDE_CHUNK], float("-inf")).max(dim=1)
            self._release()
            if best_value is None or best_index is None:
                best_value, best_index = value, part[index]
            else:
                better = value > best_value  # strictly: an earlier chunk keeps a tie (ids ascending)
                best_value = torch.where(better, value, best_value)
                best_index = torch.where(better, part[index], best_index)
        assert best_index is not None  # the screen's own argmax is always a candidate
        return best_index

    def unscreen(self) -> None:
        """Drop the 16-bit copy (for work that reads the whole float32 matrix anyway, such as the
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
        lookup reads are dropped after it), its 16-bit copy takes half."""
        if self.screen is None or not sys.platform.startswith("linux"):
            return 0  # elsewhere MADV_DONTNEED is a hint at best: the mapped pages may all stay resident
        weight = self.model.get_output_embeddings().weight
        return int(weight.numel() * weight.element_size() - self.screen.half.numel() * self.screen.half.element_size())

    def row_bytes(self) -> int:
        """Transient bytes per row a greedy step holds (the budget counts them)."""
        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        if self.screen is not None:
            return vocab * (2 + 1)  # 16-bit scores and the candidate mask
        return 2 * _VOCAB_CHUNK * int(self.model.get_output_embeddings().weight.element_size())


@dataclass
class MappedMatrix:
    """A float32 matrix read from a safetensors file through a private mapping (copy-on-write, never
    written back): pages become resident as rows are read, and `release` lets them go again."""

    tensor: torch.Tensor
    mapping: mmap.mmap
    offset: int  # of row 0 in the mapping, in bytes
    identity: str = ""  # the file and its version: what facts computed from the matrix may be kept under

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
                    stat = path.stat()
                    identity = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{name}"
                    return MappedMatrix(tensor, whole, 8 + size + begin, identity)
    return None


def _sample_rows(count: int) -> torch.Tensor:
    """Rows to compare: 16 at each end and in the middle. In runs, not spread out: each row read from
    `like` (itself usually a view of the file's mapping made by transformers, never released) may
    map a whole 2 MB folio, so spread rows keep far more resident than they read (BENCHMARKS.md)."""
    starts = sorted({0, max(0, count // 2 - 8), max(0, count - 16)})
    rows: torch.Tensor = torch.unique(torch.cat([torch.arange(s, min(s + 16, count)) for s in starts]))
    return rows
