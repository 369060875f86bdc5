"""The response cache: a call already made with the same model, parameters and prompt is answered
from the store instead of the model.

The key is a SHA-256 over the model's resolved identity, the generation parameters (max new tokens,
stop strings, temperature) and the full prompt. The identity is what decides the answers, not the
words of the pilot: for a local model, the resolved path of its file or folder with every file's size
and modification time (the embedded model: its published SHA-256), so two pilots whose
`model: models/tuned` name different folders, or a model file replaced in place, never share answers;
for an API model, the endpoint actually called (`base_url`, else `OPENAI_BASE_URL` as the client
reads it), without credentials. Backend, endpoint, device and dtype are part of it too.

A hit copies the original call's output, tokens, latency and machine time (so cost and throughput
figures stay those of a real call), and the new call row is flagged `reused` so metrics keep it out of live
latency statistics (roi/metrics.py `live_latencies`). The decision's p95 latency gate still judges the
recorded latencies: they are real measurements, made when the original call ran.

Only greedy decoding is cached: with temperature > 0 a second call is a new sample, not the same
answer, and reusing it would hide the sampling spread. roi decodes greedily today (GREEDY below, the
value both backends send); the rule is explicit here so a sampling option cannot silently be cached.

An API model can change behind the same name: a cron job meant to catch that drift runs with
`--fresh` (docs/cron.md), which bypasses lookups but still records keys for later runs.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from roi import store
from roi.backends import GenerationRequest, GenerationResult, traits
from roi.backends.local.local_models import model_fingerprint
from roi.endpoints import effective_base_url
from roi.pilot import ModelSpec
from roi.redaction import safe_url

GREEDY = 0.0  # the temperature roi's backends decode with
KEY_VERSION = 2  # bump when what a key covers changes: old entries then simply stop matching
Identity = Mapping[str, str | None]


def cacheable(temperature: float) -> bool:
    """Only a deterministic (greedy) call can be answered from an earlier one."""
    return temperature == 0.0


def model_identity(spec: ModelSpec, base_dir: Path) -> dict[str, str | None]:
    """What makes two calls go to the same model, resolved now (relative local paths from `base_dir`,
    the pilot's folder). The display `name` is left out on purpose (renaming a model in the pilot does
    not change its answers); credentials are never part of it."""
    api = traits(spec).remote
    return {
        "backend": spec.backend,
        "model": spec.model,
        "weights": None if api else model_fingerprint(spec.model, base_dir),
        "base_url": safe_url(effective_base_url(spec.base_url)) if api else None,
        "endpoint": spec.endpoint,
        "device": spec.device,
        "dtype": spec.dtype,
    }


def cache_key(identity: Identity, request: GenerationRequest, temperature: float = GREEDY) -> str | None:
    """The content address of a call, or None when it may not be cached (temperature > 0)."""
    if not cacheable(temperature):
        return None
    payload = {
        "v": KEY_VERSION,
        "model": dict(identity),
        "params": {"max_new_tokens": request.max_new_tokens, "stop": list(request.stop), "temperature": temperature},
        "prompt": request.prompt,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Hit:
    request: GenerationRequest
    result: GenerationResult  # the original call's output, tokens and latency, under the new key
    source: str  # run_id/call_id of the original call


def split(
    db: sqlite3.Connection, identity: Identity, requests: list[GenerationRequest], *, fresh: bool
) -> tuple[list[Hit], list[GenerationRequest]]:
    """Requests answered from the cache, and those that must go to the model."""
    hits: list[Hit] = []
    misses: list[GenerationRequest] = []
    for request in requests:
        key = cache_key(identity, request)
        row = None if fresh or key is None else store.response_cache_source(db, key)
        if row is None:
            misses.append(request)
            continue
        result = GenerationResult(
            key=request.key,
            text=row["raw_output"],
            prompt_tokens=row["prompt_tokens"],
            output_tokens=row["output_tokens"],
            latency_s=row["latency_s"],
            cached_prompt_tokens=row["cached_prompt_tokens"],
            machine_s=row["machine_s"],
        )
        hits.append(Hit(request, result, f"{row['run_id']}/{row['call_id']}"))
    return hits, misses
