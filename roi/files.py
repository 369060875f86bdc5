"""Files roi reads and writes.

Reading: a pilot or data file must be a regular file under a size cap. The file is opened without
blocking and checked on the open descriptor, so a FIFO cannot hang roi, a device (`/dev/zero`, also
through a symlink) cannot fill memory, and a file swapped after a check is still the one checked.

Writing: what roi writes holds customer text (prompts, eval inputs, model output), so it is
owner-only: folders 0700, files 0600, whatever the umask. Every artefact is written to a unique
temporary file beside its target, flushed to disk and renamed over the target, so a reader (or a
crash) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import TextIO

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class FileRefused(Exception):
    """A file roi will not read; the message says why, for a person."""


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of `path`, a regular file (symlinks followed) of at most `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileRefused("file not found") from None
    except PermissionError:
        raise FileRefused("cannot read the file (permission denied)") from None
    except IsADirectoryError:
        raise FileRefused("is a directory, not a file") from None
    except OSError as err:
        raise FileRefused(f"cannot open the file ({err.strerror})") from None
    try:
        _check_regular(os.fstat(fd), max_bytes)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:  # the file grew after the check
        raise FileRefused(f"is more than {max_bytes:,} bytes; the limit is {max_bytes:,}")
    return data


def _check_regular(info: os.stat_result, max_bytes: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise FileRefused("is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"is a {_kind(info.st_mode)}, not a regular file")
    if info.st_size > max_bytes:
        raise FileRefused(f"is {info.st_size:,} bytes; the limit is {max_bytes:,}")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parents owner-only (0700); folders that exist are left as they are."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            folder.mkdir(mode=PRIVATE_DIR)
            os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
    return path


def write_atomic(path: Path, content: str | bytes) -> Path:
    """Write `content` to `path` owner-only (0600) and atomically: a unique temporary file in the same
    folder, flushed to disk, renamed over `path`; the folder entry is flushed too."""
    private_dir(path.parent)
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _sync_dir(path.parent)
    return path


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private_append(path: Path) -> TextIO:
    """`path` opened for appending text, created owner-only; never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    return os.fdopen(fd, "a", encoding="utf-8")


def make_private(path: Path) -> None:
    """Tighten a file roi owns to 0600 (a store made by an older version may be world-readable)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_uid == os.getuid() and stat.S_IMODE(path.stat().st_mode) != PRIVATE_FILE:
            os.chmod(path, PRIVATE_FILE)
