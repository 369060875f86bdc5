"""Text helpers every backend shares: what a call's generated tokens read as, and where its answer
ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def answer_text(tokenizer: Any, tokens: Sequence[int]) -> str:
    """Generated tokens as the call's text (what a result holds before its stop string is cut)."""
    return str(tokenizer.decode(list(tokens), skip_special_tokens=True))


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop string."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]
