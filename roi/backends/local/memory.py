"""The C heap and the CPU threads of a local model's process: settings made once before loading, and
the heap given back after large frees. Every function is a no-op where the C library is not glibc.
BENCHMARKS.md records what each setting changed on the demo workload."""

from __future__ import annotations

import os
import time
from typing import Any


def _glibc(function: str) -> Any:
    """A glibc function by name, or None where the C library is not glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), function, None) if name else None
    except OSError:
        return None


def return_large_blocks() -> None:
    """Serve allocations of 2 MB and more (batch caches, logits) from their own mappings, so freeing them
    gives the memory back at once. glibc's default raises that threshold to the largest block freed
    (up to 32 MB) and keeps freed blocks in the heap, where batches of changing shapes fragment it and
    the peak resident size grows."""
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        m_trim_threshold, m_mmap_threshold = -1, -3
        mallopt(m_mmap_threshold, 2 * 2**20)
        mallopt(m_trim_threshold, 2 * 2**20)


def trim_heap() -> None:
    """Give the C heap's free pages back (after loading, the tokenizer's JSON parse leaves tens of MB free
    but resident; after a batch, its freed tensors)."""
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)


def pick_threads(torch: Any) -> int:
    """Intra-op threads: the CPUs this process may run on that other work is not already using.
    PyTorch counts the host's cores; on a busy machine its spinning OpenMP threads then wait on each
    other and a forward pass slows down several times."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, min(usable, int(torch.get_num_threads()), round(usable - others_busy())))
    torch.set_num_threads(threads)
    return threads


def others_busy(window_s: float = 0.25) -> float:
    """CPUs that other processes keep busy now: the machine's busy time over a short window minus this
    process's own. The one-minute load average lags a minute behind and counts this process too: read
    right after roi's own generation (a probe loading its model), it would leave one core idle."""
    before = _busy_ticks()
    if before is None:
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    time.sleep(window_s)
    after = _busy_ticks()
    if after is None:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK") * window_s
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / ticks)


def _busy_ticks() -> tuple[int, int] | None:
    """(the machine's busy clock ticks, this process's), from /proc; None where there is no /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as machine, open("/proc/self/stat", encoding="ascii") as own:
            fields = [int(f) for f in machine.readline().split()[1:]]
            mine = own.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle, iowait = fields[3], fields[4] if len(fields) > 4 else 0
    # user and nice already contain guest and guest_nice: the first eight fields are the whole.
    busy = sum(fields[:8]) - idle - iowait
    return busy, int(mine[11]) + int(mine[12])  # utime, stime: fields 14 and 15 of proc(5)
