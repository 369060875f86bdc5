"""Where a mode's cost per item comes from, part by part, so that no saving a prefix cache would give
anyway is sold as mixed prompting's: calls, prompt tokens and the share of them a prefix cache could
serve, output tokens, compute seconds and cost, per item answered.

Per-item figures divide by the items whose call answered (`ModeSummary.answered_items`), the items the
summed tokens, seconds and cost were spent on; so a local model's cost per item is `usd_per_hour` / 3600
/ items/s, as in the end table, however many calls failed."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from roi.metrics import ModeSummary


@dataclass(frozen=True)
class SavingSources:
    """A mode's cost per item, part by part. The cacheable share is estimated from characters: the
    longest prefix each call shares with the other calls of its context (single: its task; mixed: its
    group), over the prompt's length."""

    model: str
    mode: str
    calls_per_item: float | None
    prompt_tokens_per_item: float | None
    cacheable_prompt_share: float | None  # estimated; None with fewer than two calls per context
    uncached_prompt_tokens_per_item: float | None  # estimated tokens per item a prefix cache leaves
    cached_prompt_tokens_reported: int | None  # what the backend said it served from a cache
    output_tokens_per_item: float | None
    compute_s_per_item: float | None  # measured machine time where the backend gives it, else latency
    cost_per_item_usd: float | None
    compute_measured: bool = False  # compute_s_per_item is measured machine time (a local engine)
    latency_s_per_call: float | None = None  # mean latency of a call, what every item of it waits (local: modelled)


def _common_prefix(texts: list[str]) -> int:
    first, last = min(texts), max(texts)  # the lexicographic extremes bound every common prefix
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return size


def _contexts(calls: pd.DataFrame) -> pd.Series:
    return calls["call_id"].str.rsplit(":", n=1).str[0]  # model/single:task or model/mixed:g0


def shared_prefix_chars(calls: pd.DataFrame) -> pd.Series:
    """Characters of each call's prompt that every call of its context shares (single: its task; mixed:
    its group): what a prefix cache could serve. 0 for a call alone in its context."""
    out = pd.Series(0, index=calls.index, dtype=int)
    for _, group in calls.groupby(_contexts(calls)):
        if len(group) >= 2:
            out[group.index] = _common_prefix([str(p) for p in group["prompt"]])
    return out


def _cacheable_share(calls: pd.DataFrame) -> float | None:
    if (calls.groupby(_contexts(calls)).size() < 2).any():
        return None
    lengths = calls["prompt"].str.len()
    shares = (shared_prefix_chars(calls) / lengths)[lengths > 0]
    return float(shares.mean()) if len(shares) else None


def saving_sources(summary: ModeSummary | None, calls: pd.DataFrame, model: str, mode: str) -> SavingSources:
    """A mode's cost per item, part by part. The counts, tokens, machine time and cost are the run's
    summary of the model and mode (roi/metrics.py; None: the mode has no call); read from the calls is
    only what the summary does not hold: the prompts' shared prefixes, the tokens a backend served from
    its own prompt cache, and the latency."""
    ok = calls[(calls["model"] == model) & (calls["mode"] == mode) & calls["error"].isna()]
    if summary is None:
        return SavingSources(
            model=model, mode=mode, calls_per_item=None, prompt_tokens_per_item=None, cacheable_prompt_share=None,
            uncached_prompt_tokens_per_item=None, cached_prompt_tokens_reported=None, output_tokens_per_item=None,
            compute_s_per_item=None, cost_per_item_usd=None,
        )  # fmt: skip
    items = summary.answered_items
    share = _cacheable_share(ok) if len(ok) else None
    prompt_per_item = _per_item(summary.prompt_tokens, items)
    cached = ok["cached_prompt_tokens"]
    return SavingSources(
        model=model,
        mode=mode,
        calls_per_item=(summary.calls - summary.failed_calls) / items if items else None,  # calls that answered
        prompt_tokens_per_item=prompt_per_item,
        cacheable_prompt_share=share,
        uncached_prompt_tokens_per_item=None
        if share is None or prompt_per_item is None
        else prompt_per_item * (1 - share),
        cached_prompt_tokens_reported=None if cached.isna().all() else int(cached.fillna(0).sum()),
        output_tokens_per_item=_per_item(summary.output_tokens, items),
        compute_s_per_item=_per_item(summary.compute_s, items),
        cost_per_item_usd=_per_item(summary.cost_usd, items),
        compute_measured=summary.compute_basis == "machine",
        latency_s_per_call=float(ok["latency_s"].mean()) if len(ok) else None,
    )


def _per_item(total: float | pd.Series | None, items: int) -> float | None:
    """A total over a mode's answered items, per item (None: unknown, or no item answered)."""
    if total is None or not items:
        return None
    return float((total.sum() if isinstance(total, pd.Series) else total) / items)
