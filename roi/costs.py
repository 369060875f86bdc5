"""What one call costs: token prices for API models, machine time for local ones; None when unknown.

A local call is paid by the machine time it took in its batch (`GenerationResult.machine_s`: its share
of the engine's passes, see roi/backends/local/prefix_batching.py), not by its latency: the engine
computes a shared prefix once for every call of a batch, as any serving stack would in production,
while the latency is that of the call run alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from roi.backends import traits
from roi.pilot import ModelSpec

if TYPE_CHECKING:
    from roi.backends import GenerationResult


def call_cost_usd(
    spec: ModelSpec,
    *,
    machine_s: float | None,
    prompt_tokens: int | None,
    output_tokens: int | None,
    cached_prompt_tokens: int | None = None,
) -> float | None:
    if not traits(spec).billed_by_tokens:
        if spec.cost is None or machine_s is None:
            return None
        return machine_s * spec.cost.usd_per_hour / 3600.0
    price = spec.price
    if price is None or prompt_tokens is None or output_tokens is None:
        return None
    cached = cached_prompt_tokens or 0
    cached_price = price.cached_input_per_1m if price.cached_input_per_1m is not None else price.input_per_1m
    dollars = (prompt_tokens - cached) * price.input_per_1m + cached * cached_price
    dollars += output_tokens * price.output_per_1m
    if spec.batch and price.batch_discount is not None:
        dollars *= 1.0 - price.batch_discount
    return dollars / 1e6


def result_cost_usd(spec: ModelSpec, result: GenerationResult) -> float | None:
    """What a finished call cost, from its measured machine time or its reported tokens."""
    return call_cost_usd(
        spec,
        machine_s=result.machine_s,
        prompt_tokens=result.prompt_tokens,
        output_tokens=result.output_tokens,
        cached_prompt_tokens=result.cached_prompt_tokens,
    )
