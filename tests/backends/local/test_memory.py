"""The CPU count a local model's threads are picked from: other processes' work counts, roi's own does not."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from roi.backends.local.memory import others_busy

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SPIN = "import time\nend = time.monotonic() + 5\nwhile time.monotonic() < end: pass"


def test_another_process_spinning_counts_as_one_busy_cpu() -> None:
    quiet = others_busy(0.5)
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.3)
        busy = others_busy(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy - quiet > 0.6


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
