"""One run per pilot at a time.

The lock is an `fcntl.flock` on OUT/locks/<pilot>.lock, held for the whole run. The kernel drops it
when the holder exits in any way, SIGKILL included, so a lock cannot outlive its process; the file
keeps the last holder's pid, host and start time, for the message a second run prints and to tell
that an earlier holder died (a "stale" lock, taken over at once). Because the lock is held while a
run is alive, a run of the pilot still marked `running` once we hold the lock was killed: a plain
re-run resumes it (`roi.store.unfinished_run`).

flock works between processes of one machine on a local filesystem; keep OUT off NFS for cron.

The lock file is opened with O_NOFOLLOW and must be a regular file with one link, owned by the user
running roi: a symlink or hard link planted in OUT/locks/ is refused (exit 1), never followed, and
so never truncated. It is created owner-only (0600) in an owner-only folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from roi.errors import ExitCode, RunFailed
from roi.files import PRIVATE_FILE, private_dir

POLL_S = 0.5


class LockBusy(RunFailed):
    """Another process runs this pilot: this run did not start (exit 1, "failed to run")."""


class LockWaitExpired(LockBusy):
    """The run deadline passed while waiting for another run of the pilot: this run did not start, and
    the deadline's exit code applies (4), as for a deadline that stops a run."""

    exit_code = ExitCode.INCOMPLETE


@dataclass(frozen=True)
class Holder:
    pid: int | None
    host: str | None
    started_at: str | None
    run_id: str | None = None

    def describe(self) -> str:
        who = f"pid {self.pid} on {self.host}" if self.pid is not None else "another process"
        return who + (f", started {self.started_at}" if self.started_at else "")


def lock_path(out_dir: Path, pilot: str) -> Path:
    return out_dir / "locks" / f"{pilot}.lock"


def read_holder(fd: int) -> Holder:
    """The holder recorded in the lock file open at `fd`."""
    try:
        data: dict[str, Any] = json.loads(os.pread(fd, 65536, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    return Holder(data.get("pid"), data.get("host"), data.get("started_at"), data.get("run_id"))


def open_lock_file(path: Path) -> int:
    """The lock file's descriptor: never through a symlink, never a file that is not roi's own."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, PRIVATE_FILE)
    except OSError as err:
        reason = "it is a symbolic link" if os.path.islink(path) else err.strerror
        raise RunFailed(f"cannot use the lock file {path}: {reason}; remove it and run again") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "it is not a regular file"
    elif info.st_nlink != 1:
        problem = "it has other hard links"
    elif info.st_uid != os.getuid():
        problem = "another user owns it"
    if problem is not None:
        os.close(fd)
        raise RunFailed(f"cannot use the lock file {path}: {problem}; remove it and run again")
    return fd


class PilotLock:
    """`with PilotLock(out, pilot, wait=False) as lock:` runs the body holding the pilot's lock.

    `previous` is the holder still recorded in the file when we took the lock: a clean release empties
    the file, so this is a process that died holding it (a stale lock, now taken over). With `wait`,
    `timeout_s` is what is left of the run deadline: past it, `LockWaitExpired`.
    """

    def __init__(
        self,
        out_dir: Path,
        pilot: str,
        *,
        wait: bool = False,
        timeout_s: float | None = None,
        on_wait: Callable[[Holder], None] = lambda h: None,
        refused: str = "",
    ) -> None:
        self.path = lock_path(out_dir, pilot)
        self.pilot = pilot
        self.wait = wait
        self.timeout_s = timeout_s
        self.on_wait = on_wait
        self.refused = refused  # what a refusal adds for the command that asked (what to do instead)
        self.previous: Holder | None = None
        self._fd: int | None = None

    def acquire(self) -> PilotLock:
        fd = open_lock_file(self.path)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = read_holder(fd)
                if not self.wait:
                    os.close(fd)
                    raise LockBusy(f"{self._busy(holder)}. {self.refused}".rstrip()) from None
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockWaitExpired(self._expired(holder)) from None
                if not told:
                    self.on_wait(holder)
                    told = True
                time.sleep(POLL_S)
        old = read_holder(fd)
        self.previous = old if old.pid is not None else None
        self._fd = fd
        self._write(None)
        return self

    def _busy(self, holder: Holder) -> str:
        run = f" as run {holder.run_id}" if holder.run_id else ""
        return f"pilot {self.pilot!r} is already running{run} ({holder.describe()}; lock {self.path})"

    def _expired(self, holder: Holder) -> str:
        seconds = self.timeout_s or 0.0
        waited = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
        return f"waited {waited} while {self._busy(holder)}; the run deadline passed, so this run did not start"

    def _write(self, run_id: str | None) -> None:
        assert self._fd is not None
        record = {
            "pid": os.getpid(),
            "host": platform.node(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_id": run_id,
        }
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(record).encode(), 0)

    def note_run(self, run_id: str) -> None:
        """Record the run id in the lock file, for a waiting or refused second run's message."""
        assert self._fd is not None
        holder = read_holder(self._fd)
        record = {"pid": holder.pid, "host": holder.host, "started_at": holder.started_at, "run_id": run_id}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(record).encode(), 0)

    def release(self) -> None:
        # The file stays: unlinking a flock'd file lets a third process lock a new inode while a
        # second one still waits on the old one, and two runs would proceed.
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # a clean end leaves no holder: a holder found later has died
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> PilotLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
