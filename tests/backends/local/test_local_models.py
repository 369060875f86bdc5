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


def test_the_added_tokens_listed_in_the_config_load_the_same_tokenizer(
    embedded_model_dir: Path, tmp_path: Path
) -> None:
    """The converted folder's tokenizer_config.json lists the added tokens (so loading skips a second parse
    of tokenizer.json); the tokenizer loaded with and without the list is the same."""
    import json

    from transformers import AutoTokenizer

    config = json.loads((embedded_model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert len(config["added_tokens_decoder"]) > 100
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("tokenizer.json", "config.json"):
        (bare / name).symlink_to(embedded_model_dir / name)
    without = {k: v for k, v in config.items() if k != "added_tokens_decoder"}
    (bare / "tokenizer_config.json").write_text(json.dumps(without), encoding="utf-8")
    listed, plain = AutoTokenizer.from_pretrained(str(embedded_model_dir)), AutoTokenizer.from_pretrained(str(bare))
    text = "France -> Paris\nA[1] (en_fr) white -> blanc <pad><start_of_turn> émoji 🎉 日本語\n\n"
    assert listed(text).input_ids == plain(text).input_ids
    assert listed.added_tokens_decoder == plain.added_tokens_decoder
    assert listed.all_special_ids == plain.all_special_ids and listed.pad_token_id == plain.pad_token_id
