"""Finding local models: never a download, a clear error when the model is not on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roi.backends.local.local_models import cache_dir, resolve_model_dir
from roi.errors import RoiError


def test_missing_model_is_a_clear_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(RoiError, match=r"not found on disk.*never downloads"):
        resolve_model_dir("google/gemma-3-270m", tmp_path, print)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(RoiError, match="model file not found"):
        resolve_model_dir("weights/absent.gguf", tmp_path, print)
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(RoiError, match=r"no config\.json"):
        resolve_model_dir("not-a-model", tmp_path, print)


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROI_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"


def test_embedded_model_is_converted_once_and_cached(embedded_model_dir: Path) -> None:
    assert (embedded_model_dir / "model.safetensors").stat().st_size > 500_000_000
    assert (embedded_model_dir / "tokenizer.json").is_file()
    messages: list[str] = []
    assert resolve_model_dir("embedded", Path("."), messages.append) == embedded_model_dir
    assert messages == []  # already converted: nothing to say, nothing to do
