"""Which format screens the output layer, chosen by measurement on the machine at hand.

The 16-bit screen of roi/backends/local/output_layer.py reads half the bytes of the float32 matrix,
but whether that is faster depends on the CPU's kernels: a CPU with native bfloat16 dot products runs
the bfloat16 screen several times faster than float32, while float16 without native arithmetic can be
slower than the float32 it was meant to replace. So nothing is assumed: at load, each format the error
bound supports is built and refused where it would break the bound (a weight past the format's range,
a kernel that does not accumulate in float32, a screen so loose it lets a large part of the
vocabulary through), then the remaining ones and the float32 product are timed, interleaved, on real
hidden states of the model, and the fastest wins. The choice is remembered per machine (CPU model and
flags, torch version, threads, matrix shape) in the cache folder, so later runs only re-check the
bound (a choice timed while the machine was busier than its CPUs is timed again once it is calm).
Whatever the format, the token chosen is the true argmax of `W h`: the precision changes speed, never
answers.

Order of authority: the environment variable `ROI_PRECISION`, then the model's `precision` in the
pilot, then the remembered or measured choice. A format asked for that would break the bound falls
back to float32, and the run's header says so.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from roi.backends.local.output_layer import (
    FLOAT32,
    FORMATS,
    PRECISIONS,
    Format,
    MappedMatrix,
    OutputLayer,
    Screen,
    read_through,
)

ENV = "ROI_PRECISION"
AUTO = "auto"
# Rows of a decoding step: one call alone, small batches, a full CPU batch (prefix_batching's limit).
# Which format is fastest changes with the rows: a set without full batches can pick the wrong one.
_TIMED_ROWS = (1, 8, 32, 64)
_ROUNDS = 3  # timing rounds, formats interleaved within each; the fastest of each format counts
_MAX_CANDIDATE_SHARE = 0.01  # a screen letting more of the vocabulary through is no screen
# x86 flags, then Arm's (`Features` in /proc/cpuinfo): the ones that decide which matrix kernels run.
_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")
_FLAGS_ARM = ("asimd", "asimdhp", "bf16", "sve")


@dataclass(frozen=True)
class Choice:
    """The output layer's precision, how it was decided, and the timings behind it."""

    precision: str
    source: str  # "measured", "remembered", "pilot", "ROI_PRECISION" or "no screen applies"
    timings_ms: dict[str, float] = field(default_factory=dict)  # per format, summed over `_TIMED_ROWS`
    refused: dict[str, str] = field(default_factory=dict)  # format -> why it would break the bound

    def describe(self) -> str:
        """One line for the run's header and the stored environment."""
        how = self.source
        if self.timings_ms:
            how += ": " + ", ".join(f"{name} {ms:.0f}" for name, ms in self.timings_ms.items()) + " ms"
        refused = "".join(f"; {name} refused ({why})" for name, why in self.refused.items())
        return f"{self.precision} ({how}{refused})"


def requested_precision(pilot_value: str) -> tuple[str, str]:
    """(precision, who asked): `ROI_PRECISION` over the pilot's `precision`; `auto` lets timing decide."""
    env = os.environ.get(ENV, "").strip().lower()
    if env and env != AUTO:
        if env not in PRECISIONS:
            from roi.errors import RoiError

            raise RoiError(f"{ENV}={env!r}: expected one of {', '.join((AUTO, *PRECISIONS))}")
        return env, ENV
    return pilot_value, "pilot"


def output_layer(
    model: Any, model_dir: Path | None, device: str, requested: str = AUTO, sample: torch.Tensor | None = None
) -> tuple[OutputLayer, Choice]:
    """The model's output layer in the precision asked for, remembered or measured now (module
    docstring). `sample`: real final hidden states (rows, hidden) to check and time the screens on."""
    asked, who = requested_precision(requested)
    mapped = OutputLayer.mappable(model, model_dir, device)
    if mapped is None:
        return OutputLayer(model), Choice(FLOAT32, "no screen applies")
    weight = mapped.tensor
    read_through(model, mapped)  # timing and checks read the matrix where the run will read it
    key = machine_key(weight)
    record = _remembered(key) if asked == AUTO else None
    names = [asked] if asked != AUTO else [record["precision"]] if record else list(PRECISIONS)
    source = who if asked != AUTO else "remembered" if record else "measured"
    screens, refused = {}, {}
    for name in names:
        if name in FORMATS:
            screen, why = _admitted(weight, FORMATS[name], mapped, sample)
            if screen is None:
                refused[name] = why
            else:
                screens[name] = screen
    timings: dict[str, float] = {}
    if source == "measured":
        timings = _timed(model, screens, sample if sample is not None else _random_rows(weight), mapped.release)
        chosen = min(timings, key=lambda n: timings[n])
        measured = asdict(Choice(chosen, source, timings, refused)) | {"measured_at": _now(), "load": load_average()}
        _remember("machines", key, measured)
    else:
        timings = dict(record["timings_ms"]) if record else {}
        chosen = names[0] if names[0] in screens or names[0] == FLOAT32 else FLOAT32
    choice = Choice(chosen, source, timings, refused)
    if chosen == FLOAT32:
        mapped.release()
        return OutputLayer(model), choice
    return OutputLayer.screened(model, screens[chosen], mapped), choice


def _admitted(
    weight: torch.Tensor, fmt: Format, mapped: MappedMatrix, sample: torch.Tensor | None
) -> tuple[Screen | None, str]:
    """The screen in `fmt`, or None and why it would break the bound on this machine and model. The
    bound's constants are computed once per model file and format, then remembered."""
    if not accumulates_in_float32(fmt, weight.shape[1]):
        return None, "the kernel does not accumulate in float32"
    known = _records().get("bounds", {}).get(f"{mapped.identity}:{fmt.name}") if mapped.identity else None
    constants = (float(known[0]), float(known[1])) if isinstance(known, list) and len(known) == 2 else None
    screen = Screen.of(weight, fmt, mapped.release, constants)
    if not screen.usable():
        return None, "weights outside the format's range"
    if constants is None and mapped.identity:
        _remember("bounds", f"{mapped.identity}:{fmt.name}", list(screen.constants))
    if sample is not None:
        with torch.inference_mode():
            found = screen.candidates(sample)
        if found is None:
            return None, "hidden states outside the format's range"
        mean = float(found[1].sum(dim=1).double().mean())
        if mean > _MAX_CANDIDATE_SHARE * weight.shape[0]:
            return None, f"the bound lets {mean:.0f} tokens per row through"
    return screen, ""


def accumulates_in_float32(fmt: Format, hidden_size: int) -> bool:
    """Whether the format's matrix product sums in float32 (what the bound assumes) at the row counts a
    decoding step uses: 1 plus many values each below the format's rounding at 1 add up only then."""
    small = fmt.unit_roundoff / 2
    matrix = torch.ones((64, hidden_size), dtype=fmt.dtype)
    expected = torch.tensor(1 + (hidden_size - 1) * small, dtype=torch.float64).to(fmt.dtype)
    for rows in (1, 2, 8, 32, 64):
        hidden = torch.full((rows, hidden_size), small, dtype=fmt.dtype)
        hidden[:, 0] = 1
        if not bool((torch.nn.functional.linear(hidden, matrix) == expected).all()):
            return False
    return True


def _timed(model: Any, screens: dict[str, Screen], sample: torch.Tensor, release: Any) -> dict[str, float]:
    """Milliseconds per format (and float32), summed over `_TIMED_ROWS`, fastest of `_ROUNDS`. The float32
    product's first round faults the mapped matrix in (as a run's first step would); its pages go after."""
    methods = {name: OutputLayer(model, screen) for name, screen in screens.items()}
    methods[FLOAT32] = OutputLayer(model)
    best = {(name, rows): float("inf") for name in methods for rows in _TIMED_ROWS}
    with torch.inference_mode():
        for _ in range(_ROUNDS):
            for name, layer in methods.items():
                for rows in _TIMED_ROWS:
                    hidden = sample[torch.arange(rows) % sample.shape[0]]
                    started = time.perf_counter()
                    layer.greedy(hidden)
                    best[(name, rows)] = min(best[(name, rows)], time.perf_counter() - started)
    release()
    return {name: round(1000 * sum(best[(name, r)] for r in _TIMED_ROWS), 1) for name in methods}


def _random_rows(weight: torch.Tensor) -> torch.Tensor:
    """Hidden states for timing when no real ones are given: random, of the matrix's row norms."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn((max(_TIMED_ROWS), weight.shape[1]), generator=generator) * float(weight[0].norm())


# ---------------------------------------------------------------- remembered per machine


def cpu_description() -> str:
    """The CPU's model name and the flags that decide which kernels run (for headers and benchmarks)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            head, _, value = line.partition(":")
            if head.strip() == "model name":
                name = value.strip()
            elif head.strip() in ("flags", "Features"):
                flags = set(value.split())
    except OSError:
        pass
    present = [f for f in (*_FLAGS, *_FLAGS_ARM) if f in flags]
    return f"{name} ({' '.join(present) or 'no listed flags'})"


def machine_key(weight: torch.Tensor) -> str:
    """What a timing depends on: the CPU, torch, the threads, the matrix's shape and the rows timed."""
    shape = "x".join(str(n) for n in weight.shape)
    rows = ",".join(str(n) for n in _TIMED_ROWS)
    return f"{cpu_description()}; torch {torch.__version__}; {torch.get_num_threads()} threads; {shape}; rows {rows}"


def _record_path() -> Path:
    from roi.backends.local.local_models import cache_dir

    return cache_dir() / "precision.json"


def _records() -> dict[str, dict[str, Any]]:
    """What is remembered: `machines` (key -> choice and timings), `bounds` (model file and format ->
    the bound's constants E, N)."""
    try:
        data = json.loads(_record_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _remembered(key: str) -> dict[str, Any] | None:
    record = _records().get("machines", {}).get(key)
    if not isinstance(record, dict) or record.get("precision") not in PRECISIONS:
        return None
    if not isinstance(record.get("timings_ms"), dict) or _timed_busy_now_calm(record):
        return None
    return record


def _timed_busy_now_calm(record: dict[str, Any]) -> bool:
    """A choice timed while more work waited than there are CPUs (contention can favour the wrong
    format) is measured again by the first run on a machine that is no longer that busy."""
    then, now, cpus = record.get("load"), load_average(), os.cpu_count() or 1
    return isinstance(then, int | float) and then > cpus and now is not None and now <= cpus


def load_average() -> float | None:
    """The one-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _remember(section: str, key: str, value: Any) -> None:
    """Keep a fact for later runs (the file written whole, then renamed: never half a file)."""
    records = _records()
    records.setdefault(section, {})[key] = value
    path = _record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass  # a read-only cache folder: measure again next time


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
