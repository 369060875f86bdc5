"""The output layer's precision chosen by measurement (roi/backends/local/precision.py): a format that
would break the screen's error bound is refused and the choice falls back to float32, the choice is
remembered per machine, and `ROI_PRECISION` and the pilot override it. Small Gemma 3 models with random
weights, saved as safetensors, go through the real loading and mapping path; the bound on the embedded
model's real hidden states is checked in test_output_layer.py."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from roi.backends.local import precision, prefix_batching
from roi.backends.local.output_layer import FLOAT32, FORMATS, PRECISIONS
from roi.errors import RoiError

Weights = Callable[[torch.Tensor], torch.Tensor]


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of the test's own (what is remembered goes there), no override in the environment,
    and a machine whose load does not change between two runs of a test."""
    monkeypatch.setenv("ROI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(precision, "load_average", lambda: 0.5)
    return tmp_path / "cache"


def small_model(folder: Path, weights: Weights = lambda w: w) -> Any:
    """A two-layer Gemma 3 (vocabulary 4096, hidden size 64) with random weights, its embedding changed by
    `weights`, saved in float32 and loaded back as roi loads models."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, sliding_window=16, max_position_embeddings=256,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(weights(model.get_input_embeddings().weight))
    model.save_pretrained(str(folder))
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    return loaded.eval()


def sample(model: Any) -> torch.Tensor:
    with torch.inference_mode():
        return model.get_decoder()(input_ids=torch.arange(2, 42)[None]).last_hidden_state[0]


def test_an_ordinary_model_is_measured_then_remembered(tmp_path: Path, own_cache: Path) -> None:
    model = small_model(tmp_path / "m")
    layer, choice = precision.output_layer(model, tmp_path / "m", "cpu", "auto", sample(model))
    assert choice.source == "measured" and choice.precision in PRECISIONS
    assert set(choice.timings_ms) == set(PRECISIONS) and not choice.refused  # both screens and float32 timed
    assert layer.precision == choice.precision
    record = json.loads((own_cache / "precision.json").read_text())
    assert [r["precision"] for r in record["machines"].values()] == [choice.precision]
    again = small_model(tmp_path / "m")
    _, remembered = precision.output_layer(again, tmp_path / "m", "cpu", "auto", sample(again))
    assert (remembered.source, remembered.precision) == ("remembered", choice.precision)
    assert remembered.timings_ms == choice.timings_ms


def test_a_choice_timed_on_a_busy_machine_is_timed_again_once_it_is_calm(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = 4.0 * (os.cpu_count() or 1)
    monkeypatch.setattr(precision, "load_average", lambda: busy)
    model = small_model(tmp_path / "m")
    _, first = precision.output_layer(model, tmp_path / "m", "cpu", "auto", sample(model))
    (record,) = json.loads((own_cache / "precision.json").read_text())["machines"].values()
    assert first.source == "measured" and record["load"] == busy
    _, still_busy = precision.output_layer(model, tmp_path / "m", "cpu", "auto", sample(model))
    assert still_busy.source == "remembered"  # no calmer moment yet: the choice stands
    monkeypatch.setattr(precision, "load_average", lambda: 0.5)
    _, calm = precision.output_layer(model, tmp_path / "m", "cpu", "auto", sample(model))
    assert calm.source == "measured"
    _, after = precision.output_layer(model, tmp_path / "m", "cpu", "auto", sample(model))
    assert after.source == "remembered"


def test_choices_are_the_exact_argmax_in_every_precision(tmp_path: Path) -> None:
    model = small_model(tmp_path / "m")
    hidden = sample(model)
    truth = torch.mm(hidden.double(), model.get_output_embeddings().weight.double().t()).argmax(dim=1)
    for name in PRECISIONS:
        layer, choice = precision.output_layer(small_model(tmp_path / "m"), tmp_path / "m", "cpu", name, hidden)
        assert (choice.precision, choice.source, layer.precision) == (name, "pilot", name)
        with torch.inference_mode():
            assert torch.equal(layer.greedy(hidden), truth)


def test_a_format_whose_range_the_weights_exceed_falls_back_to_float32(tmp_path: Path) -> None:
    """float16 ends at 65504: an embedding scaled past it would make the screen's scores infinite."""
    model = small_model(tmp_path / "m", lambda w: w * 1e7)
    layer, choice = precision.output_layer(model, tmp_path / "m", "cpu", "float16", None)
    assert (choice.precision, layer.precision, layer.screen) == (FLOAT32, FLOAT32, None)
    assert choice.refused == {"float16": "weights outside the format's range"}
    assert "float16 refused (weights outside the format's range)" in choice.describe()
    _, measured = precision.output_layer(small_model(tmp_path / "m", lambda w: w * 1e7), tmp_path / "m", "cpu")
    assert "float16" in measured.refused and measured.precision in ("bfloat16", FLOAT32)


def test_a_screen_that_would_let_the_vocabulary_through_falls_back_to_float32(tmp_path: Path) -> None:
    """Every token's row the same: no screen can rule a token out, so both are refused."""
    model = small_model(tmp_path / "m", lambda w: w[:1].expand_as(w).clone())
    layer, choice = precision.output_layer(model, tmp_path / "m", "cpu", "auto", sample(model))
    assert set(choice.refused) == set(FORMATS) and all("tokens per row through" in r for r in choice.refused.values())
    assert (choice.precision, layer.screen, list(choice.timings_ms)) == (FLOAT32, None, [FLOAT32])


def test_the_environment_overrides_the_pilot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(precision.ENV, "float32")
    model = small_model(tmp_path / "m")
    layer, choice = precision.output_layer(model, tmp_path / "m", "cpu", "bfloat16", sample(model))
    assert (choice.precision, choice.source, layer.screen) == (FLOAT32, precision.ENV, None)
    monkeypatch.setenv(precision.ENV, "half")
    with pytest.raises(RoiError, match="ROI_PRECISION='half': expected one of auto, bfloat16, float16, float32"):
        precision.output_layer(model, tmp_path / "m", "cpu", "auto", None)


def test_no_screen_where_the_matrix_is_not_in_a_float32_file(tmp_path: Path) -> None:
    model = small_model(tmp_path / "m")
    layer, choice = precision.output_layer(model, tmp_path / "elsewhere", "cpu", "bfloat16", None)
    assert (choice.precision, choice.source, layer.screen) == (FLOAT32, "no screen applies", None)


def test_this_machines_kernels_accumulate_16_bit_products_in_float32() -> None:
    """What the bound assumes; were it false here, the formats would be refused (and this test says why)."""
    assert {name: precision.accumulates_in_float32(fmt, 640) for name, fmt in FORMATS.items()} == dict.fromkeys(
        FORMATS, True
    )


def test_the_cpu_is_described_with_its_model_and_flags() -> None:
    text = precision.cpu_description()
    assert text.endswith(")") and "(" in text and len(text) > 5


def test_the_timing_covers_a_full_cpu_batch() -> None:
    """Which format is fastest changes with the rows of a step: the timing must include the largest
    batch the CPU engine runs, and a change of the rows timed must time the formats again."""
    assert max(precision._TIMED_ROWS) == prefix_batching._CPU_MAX_BATCH
    weight = torch.zeros((4, 2))
    assert precision.machine_key(weight).endswith("; 4x2; rows " + ",".join(map(str, precision._TIMED_ROWS)))
