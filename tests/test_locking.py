"""One run per pilot: a second run fails at once or waits; a lock whose holder was SIGKILLed is
taken over; the run a killed process left is what a plain re-run resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from roi import locking
from roi.errors import ExitCode, RunFailed
from roi.pilot import LoadedPilot, load_pilot
from roi.runner import RunOptions, run_pilot

from .conftest import PILOTS, REPO
from .fakes import FakeBackend

HOLD = """
import sys, time
from pathlib import Path
from roi.locking import PilotLock
with PilotLock(Path(sys.argv[1]), sys.argv[2]) as lock:
    lock.note_run("run-held")
    print("locked", flush=True)
    time.sleep(120)
"""


def _holder(out: Path, pilot: str = "demo") -> subprocess.Popen[str]:
    command = [sys.executable, "-c", HOLD, str(out), pilot]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_lock_fails_at_once_with_the_holder_named(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(RunFailed) as error, locking.PilotLock(tmp_path, "demo"):
            pass
        assert time.monotonic() - started < 5
        message = str(error.value)
        assert f"pid {proc.pid}" in message and "run-held" in message
        assert isinstance(error.value, locking.LockBusy)
        with locking.PilotLock(tmp_path, "other-pilot") as other:  # other pilots are not blocked
            assert other.previous is None
    finally:
        proc.kill()
        proc.wait()


def test_sigkilled_holder_leaves_a_stale_lock_that_is_taken_over(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert recorded(locking.lock_path(tmp_path, "demo")).pid == proc.pid  # the file still names it
    with locking.PilotLock(tmp_path, "demo") as lock:
        assert lock.previous is not None and lock.previous.pid == proc.pid and lock.previous.run_id == "run-held"
        assert recorded(lock.path).pid == os.getpid()
    with locking.PilotLock(tmp_path, "demo") as again:  # a clean release leaves no holder behind
        assert again.previous is None


def test_wait_queues_behind_the_running_holder(tmp_path: Path) -> None:
    first = locking.PilotLock(tmp_path, "demo").acquire()
    seen: list[locking.Holder] = []
    got: list[float] = []

    def second() -> None:
        with locking.PilotLock(tmp_path, "demo", wait=True, on_wait=seen.append):
            got.append(time.monotonic())

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(1.2)
    assert got == [] and len(seen) == 1 and seen[0].pid == os.getpid()
    released = time.monotonic()
    first.release()
    thread.join(timeout=10)
    assert got and got[0] >= released


def test_run_refused_while_the_pilot_runs(tmp_path: Path) -> None:
    demo = load_pilot(PILOTS / "superposition-demo.yaml")
    with locking.PilotLock(tmp_path, demo.name):
        backend = FakeBackend(demo.spec.models[0], demo)
        with pytest.raises(locking.LockBusy, match="This run did not start; use --wait to queue behind it"):
            run_pilot(demo, RunOptions(out_dir=tmp_path, limit=1, backends={"gemma-270m": backend}))
        assert backend.seen == [] and not (tmp_path / "roi.db").exists()  # nothing ran, nothing written


def test_the_run_deadline_passing_in_the_lock_wait_exits_4_unstarted(tmp_path: Path) -> None:
    """Through the installed CLI, as cron runs it: --wait behind a held lock, --max-minutes shorter."""
    proc = _holder(tmp_path, "superposition-demo")
    try:
        command = [sys.executable, "-m", "roi", "run", str(PILOTS / "superposition-demo.yaml"), "--out", str(tmp_path)]
        command += ["--wait", "--max-minutes", "0.02", "--quiet"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        proc.kill()
        proc.wait()
    message = " ".join(done.stderr.split())
    assert done.returncode == ExitCode.INCOMPLETE, done.stderr
    assert f"pid {proc.pid}" in message and "the run deadline passed, so this run did not start" in message
    assert "--wait to queue" not in message and "Traceback" not in message
    assert not (tmp_path / "roi.db").exists()


def test_plain_rerun_resumes_the_run_left_unfinished(tmp_path: Path) -> None:
    demo: LoadedPilot = load_pilot(PILOTS / "superposition-demo.yaml")
    spec = demo.spec.models[0]
    broken = FakeBackend(spec, demo, interrupt_after=4)
    with pytest.raises(KeyboardInterrupt):
        run_pilot(demo, RunOptions(out_dir=tmp_path, limit=2, fresh=True, backends={"gemma-270m": broken}))
    events: list[tuple[str, dict[str, object]]] = []
    rest = FakeBackend(spec, demo)
    result = run_pilot(
        demo,
        RunOptions(
            out_dir=tmp_path,
            limit=2,
            fresh=True,
            backends={"gemma-270m": rest},
            emit=lambda event, **fields: events.append((event, fields)),
        ),
    )
    assert len(broken.seen) == 4 and len(rest.seen) == 6 and not set(broken.seen) & set(rest.seen)
    resumed = [f for e, f in events if e == "run_resumed"]
    assert resumed and resumed[0]["run_id"] == result.run_id
    db = sqlite3.connect(tmp_path / "roi.db")
    assert db.execute("SELECT COUNT(*), MIN(status) FROM runs").fetchone() == (1, "complete")
    # A different --limit is a different run: it is not resumed.
    other = run_pilot(demo, RunOptions(out_dir=tmp_path, limit=1, backends={"gemma-270m": FakeBackend(spec, demo)}))
    assert other.run_id != result.run_id


def recorded(path: Path) -> locking.Holder:
    fd = os.open(path, os.O_RDONLY)
    try:
        return locking.read_holder(fd)
    finally:
        os.close(fd)


def test_the_lock_is_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with locking.PilotLock(out, "demo") as lock:
        # CI runs as root, which reads any file whatever its mode: the modes themselves are checked.
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(lock.path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    path = locking.lock_path(tmp_path, "demo")
    path.parent.mkdir()
    path.symlink_to(victim)
    with pytest.raises(RunFailed, match="symbolic link"), locking.PilotLock(tmp_path, "demo"):
        pass
    assert victim.read_text() == "keep me"
    path.unlink()
    os.link(victim, path)  # a hard link would be truncated the same way
    with pytest.raises(RunFailed, match="other hard links"), locking.PilotLock(tmp_path, "demo"):
        pass
    assert victim.read_text() == "keep me"
