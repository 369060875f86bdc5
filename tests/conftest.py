"""Shared fixtures. The embedded model is converted once per cache folder (ROI_CACHE_DIR, else the
user cache) and shared by every test that needs it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import LlamaServer, embedded_gguf_path

REPO = Path(__file__).resolve().parent.parent
PILOTS = REPO / "pilots"


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    from roi.backends.local.local_models import resolve_model_dir

    return resolve_model_dir("embedded", REPO, print)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One real llama.cpp server (embedded GGUF, 127.0.0.1, free port) shared by the whole session."""
    server = LlamaServer(embedded_gguf_path(), tmp_path_factory.mktemp("llama")).start()
    yield server
    server.stop()


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
