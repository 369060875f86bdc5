"""A server process on 127.0.0.1 for tests: started with a command, ready once `GET /v1/models` answers
(polled with a deadline; between polls we wait on the process itself, so a server that dies while
starting is reported at once with the end of its log), stopped or killed with every process it started
(it leads a process group of its own: vLLM's engine runs in a child that would outlive its server)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self


def group_members(group: int) -> list[int]:
    """Live processes of a process group (zombies left out: they compute nothing and hold no memory)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            found.append(int(stat.parent.name))
    return found


def wait_group_gone(group: int, deadline_s: float = 30.0) -> list[int]:
    """Wait for a process group to empty; the processes still in it at the deadline (none: gone)."""
    deadline = time.monotonic() + deadline_s
    while (left := group_members(group)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One server process; subclasses say how to start it (`command`, `environment`)."""

    name = "server"
    start_deadline_s = 120.0

    def __init__(self, log_dir: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_dir / f"{self.name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> Self:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.environment(), start_new_session=True
        )
        log.close()
        self._wait_ready(self.start_deadline_s)
        return self

    def _wait_ready(self, deadline_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self._answers():
                return
            try:
                code = self.process.wait(timeout=0.2)  # the pause between polls, cut short if it dies
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"{self.name} exited with {code} while starting:\n{self.log_tail()}")
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {deadline_s:.0f} s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
        try:
            conn.request("GET", "/v1/models")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def kill(self) -> None:
        """End the server and its children abruptly, as a crash would."""
        if self.process is not None:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, grace_s: float = 15.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace_s)
        self.kill()  # whatever the server left running: its group outlives it
        left = wait_group_gone(self.process.pid)
        assert not left, f"{self.name}: processes {left} outlived their server"

    def _signal_group(self, signal_number: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal_number)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
