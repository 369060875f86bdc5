"""Shared fixtures. The embedded model is converted once per cache folder (ROI_CACHE_DIR, else the
user cache) and shared by every test that needs it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import LlamaServer, VllmServer, embedded_gguf_path, vllm_python

REPO = Path(__file__).resolve().parent.parent
PILOTS = REPO / "pilots"

# A test that needs the real model or server is slow whether or not its author marked it: mark it by
# the fixtures it uses, so `-m "not model and not server"` is the fast subset it claims to be.
_SLOW_FIXTURES = {"embedded_model_dir": "model", "llama_server": "server", "vllm_server": "vllm"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, mark in _SLOW_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(mark)
    # The tests on the vLLM server last, together: the server (several GB) then starts after every other
    # test and stops at once (a stable sort keeps each module's order).
    items.sort(key=lambda item: "vllm_server" in getattr(item, "fixturenames", ()))


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


@pytest.fixture(scope="session")
def vllm_server(embedded_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """One real vLLM server (the converted embedded model, 127.0.0.1, free port) for the whole session.
    `make test` names the environment in ROI_VLLM_PYTHON, so there a missing one fails; a bare pytest
    without `.venv-vllm` skips (build it with `make vllm-venv`)."""
    require_vllm()
    log_dir = tmp_path_factory.mktemp("vllm")
    running = os.environ.get("ROI_VLLM_PORT")  # a server already started with these settings, to iterate on tests
    server = (
        VllmServer(embedded_model_dir, log_dir, port=int(running))
        if running
        else VllmServer(embedded_model_dir, log_dir).start()
    )
    yield server
    server.stop()


def require_vllm() -> None:
    python = vllm_python()
    if python.exists():
        return
    if os.environ.get("ROI_VLLM_PYTHON"):
        pytest.fail(f"ROI_VLLM_PYTHON={python} does not exist; build it with `make vllm-venv`")
    pytest.skip(f"no vLLM environment at {python}; build it with `make vllm-venv`")


def lenient_demo(folder: Path) -> Path:
    """A copy of the demo pilot (same name, same data) whose limits a handful of items can meet, so that a
    good run passes gates a bad run then fails (baseline, cron, notification and evaluation tests)."""
    text = (PILOTS / "superposition-demo.yaml").read_text(encoding="utf-8")
    old = "gates: {max_accuracy_drop: 0.10,"
    assert old in text
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").symlink_to(PILOTS / "data")
    path = folder / "superposition-demo.yaml"
    lenient = "gates: {max_accuracy_drop: 0.9, max_unparseable_rate: 0.9, min_items_per_task: 3,"
    path.write_text(text.replace(old, lenient), encoding="utf-8")
    return path


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
