"""The CPU count a local model's threads are picked from: other processes' work counts, roi's own does not."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from roi.backends.local.memory import others_busy

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SPIN = "import time\nend = time.monotonic() + 5\nwhile time.monotonic() < end: pass"


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def test_another_process_spinning_counts_as_the_cpu_it_uses() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.3)
        before, started = _cpu_ticks(spinner.pid), time.monotonic()
        busy = others_busy(0.5)
        used = (_cpu_ticks(spinner.pid) - before) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - started)
    finally:
        spinner.kill()
        spinner.wait()
    assert used > 0.3  # the spinner ran (a whole core on an idle machine)
    assert busy > 0.8 * used


def test_this_process_spinning_does_not_count() -> None:
    quiet = others_busy(0.5)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.3)
        busy = others_busy(0.5)
    finally:
        stop.set()
        spinner.join()
    assert busy - quiet < 0.4
