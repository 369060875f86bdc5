"""The screened output layer (roi/backends/local/output_layer.py) on the real embedded model: its error bound
holds for real hidden states on this machine's kernels, its choice is the exact float32 argmax, and the
float32 matrix stays out of resident memory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from roi.backends.local.output_layer import _DECIDE_CHUNK, FORMATS, OutputLayer, Screen, sliced_greedy

PROMPTS = [
    "France -> Paris\nJapan -> Tokyo\nItaly ->",
    "Write the word in upper case.\nInput: cat\nOutput: CAT\nInput: river\nOutput:",
    "A[1] (number_en) 45 -> forty-five\nA[2] (en_fr) white -> blanc\nA[3] (capital) Norway ->",
    "<pad><pad> ) ) ) 7 7 7 \n\n\n ###",  # odd text: flat, unusual distributions
]


def resident_kb(path: Path, address: int | None = None) -> int:
    """Resident kilobytes of every mapping of `path` in this process (/proc/self/smaps), or only of
    the one holding `address`."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            low, high = (int(end, 16) for end in head[0].split("-"))
            inside = line.rstrip().endswith(str(path.resolve()))  # smaps names the resolved path
            inside = inside and (address is None or low <= address < high)
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


@pytest.fixture(scope="module")
def model_dir(embedded_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the model: a file just written sits in the page cache in large folios, which a
    fault maps whole (up to 2 MB), the hardest case for keeping the matrix out of resident memory and
    the one CI meets after converting the model."""
    copy = tmp_path_factory.mktemp("model") / "embedded"
    shutil.copytree(embedded_model_dir, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    for file in embedded_model_dir.glob("*.safetensors"):
        # write(), not shutil's copy: sendfile/copy_file_range leave small folios behind (measured)
        with file.open("rb") as source, (copy / file.name).open("wb") as target:
            while chunk := source.read(64 << 20):
                target.write(chunk)
    return copy


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> Iterator[tuple[Any, Any, OutputLayer, int]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, local_files_only=True)
    model.eval()
    file = model_dir / "model.safetensors"
    before = resident_kb(file)
    output = OutputLayer.for_model(model, model_dir, "cpu")
    yield model, tokenizer, output, resident_kb(file) - before


def hidden_states(model: Any, tokenizer: Any) -> torch.Tensor:
    """Final hidden states at every position of a few prompts: 60-odd real rows."""
    rows = []
    with torch.inference_mode():
        for prompt in PROMPTS:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            rows.append(model.get_decoder()(input_ids=ids).last_hidden_state[0])
    return torch.cat(rows)


@pytest.mark.parametrize("name", list(FORMATS))
def test_the_bound_holds_and_the_choice_is_the_exact_argmax(
    loaded: tuple[Any, Any, OutputLayer, int], name: str
) -> None:
    model, tokenizer, output, _ = loaded
    assert output.screen is not None, "the embedded model's float32 embedding maps from its safetensors file"
    fmt = FORMATS[name]
    screen = output.screen if output.screen.format == fmt else Screen.of(output.mapped.tensor, fmt)  # type: ignore[union-attr]
    hidden = hidden_states(model, tokenizer)
    assert hidden.shape[0] > 40
    with torch.inference_mode():
        exact = torch.mm(hidden.double(), model.get_output_embeddings().weight.double().t())  # float64 truth
        approx = torch.nn.functional.linear(hidden.to(fmt.dtype), screen.half).double()
        worst = (exact - approx).abs().max(dim=1).values
        largest = approx.abs().max(dim=1).values
        bound = screen.margins(hidden, hidden.to(fmt.dtype), largest) / 2  # without the safety factor
        assert bool((worst <= bound).all()), (worst / bound).max()
        assert float((worst / bound).max()) > 0.05  # the bound is not vacuous either: it is within 20x
        found = screen.candidates(hidden)
        assert found is not None
        per_row = found[1].sum(dim=1).double()
        assert float(per_row.median()) < 20  # few candidates on ordinary text (odd text may let more through)
        layer = OutputLayer(model, screen)
        assert torch.equal(layer.greedy(hidden), sliced_greedy(model, hidden))
        assert torch.equal(layer.greedy(hidden), exact.argmax(dim=1))


def test_a_row_letting_thousands_through_is_decided_in_chunks(loaded: tuple[Any, Any, OutputLayer, int]) -> None:
    """A flat row (padding and symbols: logits near -80, a hidden state of norm ~650) lets tens of thousands
    of tokens through the bfloat16 screen; the float64 decision runs over them a chunk at a time."""
    model, tokenizer, output, _ = loaded
    screen = Screen.of(output.mapped.tensor, FORMATS["bfloat16"])  # type: ignore[union-attr]
    hidden = hidden_states(model, tokenizer)
    with torch.inference_mode():
        found = screen.candidates(hidden)
        assert found is not None and found[0].numel() > 3 * _DECIDE_CHUNK  # several chunks
        exact = torch.mm(hidden.double(), model.get_output_embeddings().weight.double().t())
        assert torch.equal(OutputLayer(model, screen).greedy(hidden), exact.argmax(dim=1))


def test_the_float32_matrix_stays_in_its_file(loaded: tuple[Any, Any, OutputLayer, int]) -> None:
    model, _, output, grown_kb = loaded
    weight = model.get_output_embeddings().weight
    assert weight is model.get_input_embeddings().weight  # still tied
    assert grown_kb < 20 * 1024, f"{grown_kb} kB of the model file became resident building the screen"
    assert output.resident_saving() == weight.numel() * 2  # float32 off the heap, float16 copy on it


def test_lookups_leave_the_matrix_in_its_file(loaded: tuple[Any, Any, OutputLayer, int], model_dir: Path) -> None:
    model, tokenizer, output, _ = loaded
    assert output.mapped is not None
    file, address = model_dir / "model.safetensors", output.mapped.tensor.data_ptr()
    tokens = torch.randint(
        0, model.get_input_embeddings().weight.shape[0], (1, 2000), generator=torch.Generator().manual_seed(0)
    )
    with torch.inference_mode():
        looked_up = model.get_input_embeddings()(tokens)
        output.greedy(hidden_states(model, tokenizer))
    assert looked_up.shape == (1, 2000, 640)
    # Without dropping the pages, 2000 random lookups left 638 MB of the 671 MB matrix resident.
    assert resident_kb(file, address) < 1024


def test_no_file_no_screen(loaded: tuple[Any, Any, OutputLayer, int], tmp_path: Path) -> None:
    model, tokenizer, _, _ = loaded
    plain = OutputLayer.for_model(model, tmp_path, "cpu")
    assert plain.screen is None and plain.resident_saving() == 0
    hidden = hidden_states(model, tokenizer)[:8]
    with torch.inference_mode():
        assert torch.equal(plain.greedy(hidden), sliced_greedy(model, hidden))


def test_unscreen_keeps_choices_exact(loaded: tuple[Any, Any, OutputLayer, int], model_dir: Path) -> None:
    model, tokenizer, _, _ = loaded
    layer = OutputLayer.for_model(model, model_dir, "cpu")
    hidden = hidden_states(model, tokenizer)[-8:]
    with torch.inference_mode():
        screened = layer.greedy(hidden)
        assert layer.resident_saving() == model.get_output_embeddings().weight.numel() * 2
        layer.unscreen()
        assert layer.screen is None and layer.resident_saving() == 0
        assert torch.equal(layer.greedy(hidden), screened)
