"""Every cheaper lever beside mixing, by hand: prompt caching, a batch API, mixing, mixing on a batch API,
priced for an API model from stored calls, and the decision line naming the cheapest passing option."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from roi.backends import GenerationRequest, GenerationResult
from roi.levers import CACHE_WRITES_PER_MONTH, batch_tasks, cached_call_cost_usd, write_share
from roi.pilot import LoadedPilot, Price, load_pilot
from roi.prompts import PromptCall, Query
from roi.report.wording import decision_line
from roi.runner import RunOptions, RunResult, run_pilot
from roi.saving_sources import shared_prefix_chars

from .fakes import FakeBackend, Policy, gold

VOLUME = 100_000
PRICE = {
    "input_per_1m": 1.0,
    "cached_input_per_1m": 0.1,
    "cache_write_per_1m": 1.25,
    "output_per_1m": 4.0,
    "batch_discount": 0.5,
}


# ---------------------------------------------------------------- pure parts


def test_a_cached_call_by_hand() -> None:
    price = Price(input_per_1m=2.5, cached_input_per_1m=0.25, cache_write_per_1m=3.125, output_per_1m=10.0)
    # 200 uncached x 2.5 + 800 cached x (10% written at 3.125 + 90% read at 0.25) + 10 out x 10 = 1,030 per 1M
    cost = cached_call_cost_usd(price, prompt_tokens=1000, output_tokens=10, cached_tokens=800, write_share=0.1)
    assert cost == pytest.approx(1030e-6)
    # no write price: a write is an ordinary uncached read
    plain = Price(input_per_1m=2.5, cached_input_per_1m=0.25, output_per_1m=10.0)
    assert cached_call_cost_usd(
        plain, prompt_tokens=1000, output_tokens=10, cached_tokens=800, write_share=1.0
    ) == pytest.approx(2600e-6)


def test_write_share_follows_the_cache_lifetime() -> None:
    assert CACHE_WRITES_PER_MONTH == 8640  # one write per 5 minutes over 30 days
    assert write_share(100_000) == pytest.approx(0.0864)
    assert write_share(5_000) == 1.0 and write_share(0) == 1.0  # calls rarer than the cache lives


def test_shared_prefix_is_per_context() -> None:
    calls = pd.DataFrame(
        {
            "call_id": ["m/single:a:1", "m/single:a:2", "m/single:b:1", "m/mixed:g0:1"],
            "prompt": ["ABCDEFxyz1", "ABCDEFxyz2", "ABCq", "alone"],
        }
    )
    assert shared_prefix_chars(calls).tolist() == [9, 9, 0, 0]


def test_batch_only_for_tasks_that_may_wait(tmp_path: Path) -> None:
    pilot = make_pilot(tmp_path, waits={"alpha": 86_400, "beta": 600})
    assert batch_tasks(pilot.spec) == ["alpha"]


# ---------------------------------------------------------------- a run of an API model


def make_pilot(
    folder: Path,
    *,
    waits: dict[str, float] | None = None,
    price: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    volume: int | None = VOLUME,
) -> LoadedPilot:
    """Two tasks at VOLUME a month each; inputs of equal length with distinct first letters, so every
    single prompt of a task is its prefix, `Input: `, two letters and `\\nOutput:`."""
    tasks = []
    for t in ("alpha", "beta"):
        task: dict[str, Any] = {
            "name": t,
            "instruction": f"Answer the {t} question about the two letters carefully and in capitals.",
            "examples": [{"input": f"{c}x", "output": f"{c.upper()}X"} for c in "pqrstuvw"],
            "eval": [{"input": f"{c}y", "output": f"{c.upper()}Y"} for c in "abcdefghijklmnopqrstuvwxyzABCD"],
            "scorer": "exact",
            "cost_per_error_usd": 0.01,
        }
        if volume is not None:
            task["monthly_volume"] = volume
        if waits and t in waits:
            task["max_latency_s"] = waits[t]
        tasks.append(task)
    spec = {
        "pilot": "levers-test",
        "business_unit": "Unit",
        "owner": "owner@example.com",
        "models": [
            {
                "name": "api",
                "backend": "openai",
                "model": "m",
                "base_url": "http://127.0.0.1:9/v1",
                "price": price or PRICE,
                **(model or {}),
            }
        ],
        "tasks": tasks,
        "modes": {"single": {"shots": 8}, "mixed": {"shots_per_task": 1}},
        "gates": {  # limits that 30 items all answered right can meet (the cost gate passes from 2 x 15 calls)
            "max_accuracy_drop": 0.2,
            "max_unparseable_rate": 0.15,
            "max_swap_rate": 0.15,
            "max_failed_call_rate": 0.15,
            "min_cost_saving": 0.1,
            "min_items_per_task": 15,
        },
        "operations": {"reviewers": ["r@example.com"], "escalation_contact": "lead@example.com"},
    }
    path = folder / "pilot.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_pilot(path)


@dataclasses.dataclass
class TokenFake(FakeBackend):
    """An API that counts one token per prompt character and writes 10 tokens per query."""

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        for result, request in zip(super().generate(requests), requests, strict=True):
            queries = 1 if "/single:" in request.key else 2
            yield dataclasses.replace(result, prompt_tokens=len(request.prompt), output_tokens=10 * queries)


def run(folder: Path, policy: Policy = gold, **pilot: Any) -> tuple[LoadedPilot, RunResult]:
    loaded = make_pilot(folder, **pilot)
    backend = TokenFake(loaded.spec.models[0], loaded, policy)
    return loaded, run_pilot(loaded, RunOptions(out_dir=folder / "out", backends={"api": backend}))


def monthly_by_hand(result: RunResult, cached_price: float = 0.1) -> dict[str, float]:
    """Each option's monthly compute cost from the stored prompts, by the formulas of docs/report.md."""
    calls = result.evaluation.calls
    out = dict.fromkeys(("single", "single_cached", "mixed"), 0.0)
    f = 8640 / VOLUME
    for task in ("alpha", "beta"):
        prompts = calls[calls["call_id"].str.startswith(f"api/single:{task}:")]["prompt"].tolist()
        shared = next(i for i, chars in enumerate(zip(*prompts, strict=False)) if len(set(chars)) > 1)
        single = [(len(p) + 10 * 4) / 1e6 for p in prompts]
        cached = [((len(p) - shared) + shared * (f * 1.25 + (1 - f) * cached_price) + 10 * 4) / 1e6 for p in prompts]
        out["single"] += VOLUME * sum(single) / len(single)
        out["single_cached"] += VOLUME * sum(cached) / len(cached)
    mixed = calls[calls["mode"] == "mixed"]["prompt"].tolist()
    out["mixed"] = 2 * VOLUME * sum((len(p) + 20 * 4) / 1e6 / 2 for p in mixed) / len(mixed)
    return out


def wrong_in_mixed(query: Query, call: PromptCall) -> str | None:
    return query.item.output if call.mode == "single" else "nonsense"


def test_a_batch_model_is_not_discounted_twice(tmp_path: Path) -> None:
    """`batch: true`: the measured calls already cost the batch price, so the batch options are the
    measured ones, not half of them again."""
    waits = {"alpha": 86_400, "beta": 86_400}
    _, result = run(tmp_path, waits=waits, price={**PRICE, "cached_input_per_1m": 0.5}, model={"batch": True})
    d = result.decision.chosen
    assert d.levers is not None
    hand = monthly_by_hand(result, cached_price=0.5)
    compute = {x.option: x.plan.monthly_compute_plan_usd.value for x in d.levers.levers if x.plan is not None}
    assert compute["single"] == pytest.approx(hand["single"] * 0.5)
    assert compute["single_batch"] == pytest.approx(compute["single"])
    assert compute["mixed_batch"] == pytest.approx(compute["mixed"])
    assert compute["single_cached"] == pytest.approx(hand["single_cached"] * 0.5)  # cached calls at the batch price


def test_levers_by_hand_and_the_cheapest_named(tmp_path: Path) -> None:
    """Cached input at half the input price: caching saves less than mixing on a batch API does."""
    _, result = run(tmp_path, waits={"alpha": 86_400, "beta": 86_400}, price={**PRICE, "cached_input_per_1m": 0.5})
    d = result.decision.chosen
    assert d.levers is not None
    hand = monthly_by_hand(result, cached_price=0.5)
    figures = {x.option: x.plan for x in d.levers.levers}
    compute = {o: p.monthly_compute_plan_usd.value for o, p in figures.items() if p is not None}
    assert compute["single"] == pytest.approx(hand["single"])
    assert compute["single_cached"] == pytest.approx(hand["single_cached"])
    assert compute["single_batch"] == pytest.approx(hand["single"] * 0.5)
    assert compute["mixed"] == pytest.approx(hand["mixed"])
    assert figures["mixed"] == d.grouping.economics  # the same plan as the ROI section's
    assert compute["mixed_batch"] == pytest.approx(hand["mixed"] * 0.5)
    assert d.levers.lever("single_cached").source == "modelled"
    # every answer right in both modes: no error cost, mixing passes, and the saving is compute only
    saving = {o: p.net_monthly_benefit_usd.value for o, p in figures.items() if p is not None}
    assert saving["single_batch"] == pytest.approx(hand["single"] * 0.5)
    cheapest = min(compute, key=lambda o: compute[o])
    assert d.levers.cheapest == cheapest == "mixed_batch"
    line = decision_line(result.decision)
    assert "Cheapest option that passes the accuracy gates: mixed prompts on a batch API" in line


def test_a_cheaper_lever_than_mixing_leads_the_decision_line(tmp_path: Path) -> None:
    """Mixing is accurate here but beta cannot wait, so mixing cannot use the batch API; single prompts
    of alpha can, and prompt caching cuts both tasks' prefixes."""
    _, result = run(tmp_path, waits={"alpha": 86_400})
    d = result.decision.chosen
    assert d.levers is not None and d.stage >= 1  # the stage advances mixing
    assert d.levers.lever("mixed_batch").plan is None and d.levers.lever("mixed_batch").note == "levers.group_waits"
    assert d.levers.lever("single_batch").batch_tasks == ["alpha"]
    hand = monthly_by_hand(result)
    assert d.levers.cheapest == "single_cached" and hand["single_cached"] < hand["mixed"]
    line = decision_line(result.decision)
    # the stage sentence follows: the cheaper lever is read first
    assert line.split(": ", 1)[1].startswith(
        "Serving single prompts with prompt caching saves more than mixing as measured"
    )
    assert "at no accuracy cost" in line


def test_failing_mixing_is_never_the_recommendation(tmp_path: Path) -> None:
    price = {**PRICE, "cached_input_per_1m": None}
    _, result = run(tmp_path, wrong_in_mixed, waits={"alpha": 86_400, "beta": 86_400}, price=price)
    d = result.decision.chosen
    assert d.levers is not None
    mixed_batch = d.levers.lever("mixed_batch")
    assert not mixed_batch.passes_accuracy and mixed_batch.plan is not None
    # without a cached input price caching saves nothing; the batch API halves single prompts' cost
    assert d.levers.lever("single_cached").note == "levers.no_cached_price"
    assert d.levers.cheapest == "single_batch"
    assert "Cheapest option that passes the accuracy gates: single prompts on a batch API" in decision_line(
        result.decision
    )


def test_the_section_comes_first_after_the_decision(tmp_path: Path) -> None:
    _, result = run(tmp_path, waits={"alpha": 86_400, "beta": 86_400})
    html = (result.run_dir / "report.html").read_text()
    sections = html.split("<main>", 1)[1]
    assert sections.index('id="levers"') < sections.index('id="roi"')
    assert "Cheaper without mixing?" in html and "(cheapest that passes)" in html


def no_nonsense(text: str) -> None:
    assert not re.search(r"\b(nan|NaN|inf|Infinity)\b", text), re.search(r".{40}\b(nan|NaN|inf|Infinity)\b.{40}", text)


def test_no_monthly_volume_is_named_not_a_silent_minus_100_percent(tmp_path: Path) -> None:
    _, result = run(tmp_path, volume=None)
    html = (result.run_dir / "report.html").read_text()
    expected = "Monthly figures cannot be projected for api: monthly_volume is not set for alpha, beta"
    assert expected in html and expected in decision_line(result.decision)
    report = json.loads((result.run_dir / "report.json").read_text())
    roi = next(s for s in report["sections"] if s["id"] == "roi")["data"]["models"][0]
    assert roi["economics"]["roi"]["value"] is None and roi["economics"]["net_monthly_benefit_usd"]["value"] is None
    assert expected in roi["issues"][0]
    no_nonsense(html)
    no_nonsense((result.run_dir / "report.json").read_text())


def test_a_zero_price_gives_the_true_reason(tmp_path: Path) -> None:
    free = {"input_per_1m": 0.0, "output_per_1m": 0.0}
    _, result = run(tmp_path, price=free)
    gate = next(g for g in result.decision.chosen.gates if g.gate == "cost_saving")
    assert gate.why == "zero_cost"
    html = (result.run_dir / "report.html").read_text()
    assert "its calls cost $0 (its price is 0), so there is no cost for mixing to save" in html
    assert "no cost (set cost.usd_per_hour or price" not in html  # not the missing-price reason
    no_nonsense(html)
    no_nonsense((result.run_dir / "report.json").read_text())


@dataclasses.dataclass
class CachingFake(TokenFake):
    """An API that reports cached prompt tokens: none for a task's first single call (the cache is empty),
    then 30 for alpha and 20 for beta (mixed calls report none)."""

    first: set[str] = dataclasses.field(default_factory=set)

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        for result, request in zip(super().generate(requests), requests, strict=True):
            if "/single:" not in request.key:
                yield result
                continue
            task = request.key.split("/single:", 1)[1].split(":", 1)[0]
            cached = 0 if task not in self.first else {"alpha": 30, "beta": 20}[task]
            self.first.add(task)
            yield dataclasses.replace(result, cached_prompt_tokens=cached)


def test_reported_cached_tokens_price_the_caching_option(tmp_path: Path) -> None:
    """When the API reported cached tokens, each call's cacheable prefix is the most its task reported
    (30 and 20 tokens here), not the modelled common prefix."""
    loaded = make_pilot(tmp_path)
    backend = CachingFake(loaded.spec.models[0], loaded, gold)
    result = run_pilot(loaded, RunOptions(out_dir=tmp_path / "out", backends={"api": backend}))
    d = result.decision.chosen
    assert d.levers is not None
    lever = d.levers.lever("single_cached")
    assert lever.source == "reported" and lever.plan is not None
    calls = result.evaluation.calls
    f = 8640 / VOLUME
    hand = 0.0
    for task, prefix in (("alpha", 30), ("beta", 20)):
        prompts = calls[calls["call_id"].str.startswith(f"api/single:{task}:")]["prompt"].tolist()
        cached = [((len(p) - prefix) + prefix * (f * 1.25 + (1 - f) * 0.1) + 10 * 4) / 1e6 for p in prompts]
        hand += VOLUME * sum(cached) / len(cached)
    assert lever.plan.monthly_compute_plan_usd.value == pytest.approx(hand)


def test_the_cost_gate_judges_the_volume_weighted_rows(tmp_path: Path) -> None:
    """The cost gate's figure is 1 - sum_t w_t c(t, plan) / sum_t w_t c(t, single), from the per-task cost
    per item of each mode in the summary and the tasks' volumes (equal here; both tasks mixed)."""
    _, result = run(tmp_path)
    d = result.decision.chosen
    assert d.grouping.mixed_tasks == ["alpha", "beta"]
    cost = {(c.task, c.mode): c.cost_per_item_usd for c in result.summary.cells}
    single = VOLUME * (cost[("alpha", "single")] + cost[("beta", "single")])  # type: ignore[operator]
    plan = VOLUME * (cost[("alpha", "mixed")] + cost[("beta", "mixed")])  # type: ignore[operator]
    gate = next(g for g in d.gates if g.gate == "cost_saving")
    assert gate.value == pytest.approx(1 - plan / single)
    assert gate.n == 30  # the group's mixed calls
