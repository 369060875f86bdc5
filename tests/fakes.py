"""A deterministic stand-in backend for fast runner, store and statistics tests.

It is injected through `RunOptions.backends`; a pilot file cannot select it. End-to-end behaviour is
tested on the real embedded model elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from roi.backends import CannotScore, ContinuationQuery, ContinuationScores, GenerationRequest, GenerationResult
from roi.pilot import LoadedPilot, ModelSpec
from roi.prompts import PromptCall, Query, answer_head, build_calls, plan_calls

# Given a query and its call, the answer the fake model gives (None: leave the line out).
Policy = Callable[[Query, PromptCall], str | None]


def gold(query: Query, call: PromptCall) -> str | None:
    return query.item.output


@dataclass
class FakeBackend:
    spec: ModelSpec
    pilot: LoadedPilot
    policy: Policy = gold
    fail_keys: set[str] = field(default_factory=set)
    interrupt_after: int | None = None
    seen: list[str] = field(default_factory=list)

    def _calls(self, requests: Sequence[GenerationRequest]) -> dict[str, PromptCall]:
        """The pilot's calls, and the measured plan's that were asked for (keyed `plan:<a>+<b>:<i>`)."""
        calls = build_calls(self.pilot)
        for group in {r.key.split(":")[1] for r in requests if "/plan:" in r.key}:
            calls += plan_calls(self.pilot, group.split("+"))
        return {f"{self.spec.name}/{c.call_key}": c for c in calls}

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        calls = self._calls(requests)
        for request in requests:
            if self.interrupt_after is not None and len(self.seen) >= self.interrupt_after:
                raise KeyboardInterrupt
            self.seen.append(request.key)
            call = calls[request.key]
            if request.key in self.fail_keys:
                yield GenerationResult(request.key, None, None, None, 0.5, error="HTTP 500 from fake", retries=2)
                continue
            seconds = 0.1 * len(call.queries)
            # A local engine reports the machine time it is paid by; an API bills tokens.
            machine = seconds if self.spec.backend == "transformers" else None
            yield GenerationResult(
                request.key, self._text(call), len(request.prompt) // 4, 3, seconds, machine_s=machine
            )

    def _text(self, call: PromptCall) -> str:
        answers = [self.policy(q, call) for q in call.queries]
        if call.mode == "single":
            return f" {answers[0] or ''}\n"
        lines = [f" {answers[0] or ''}"]
        lines += [
            f"{answer_head(n, q.task, q.item.input)} {a}"
            for n, (q, a) in enumerate(zip(call.queries, answers, strict=True), 1)
            if n > 1 and a is not None
        ]
        return "\n".join(lines) + "\n"

    def count_tokens(self, text: str) -> int | None:
        return len(text) // 4

    def describe(self) -> dict[str, str]:
        return {"backend": "fake"}

    def score_continuations(self, query: ContinuationQuery) -> ContinuationScores:
        raise CannotScore("the fake backend reads no probabilities")

    def close(self) -> None:
        pass
